"""Operator endpoints: provision agents and their tokens for the operator's account.

An agent of another account is a 404, exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assmbl.errors import Conflict, NotFound
from assmbl.inputs import (
    CursorField,
    HeaderTextField,
    InputSerializer,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    input_validate,
)
from assmbl.openapi import error_responses
from assmbl.query import cursor_decode, cursor_encode, query_params
from directory.auth import IsOperator, token_user
from directory.models import Agent, OutboundPolicy, validate_agent_id
from directory.services import (
    MAX_ALLOWED_RECIPIENTS,
    MAX_UNDO_SECONDS,
    agent_create,
    agent_deactivate,
    agent_token_rotate,
    agent_update,
)


class OutboundPolicySerializer(serializers.Serializer[Any]):
    approval = serializers.ChoiceField(choices=OutboundPolicy.Approval.choices)
    allowed_recipients = serializers.ListField(child=serializers.CharField())
    max_per_hour = serializers.IntegerField(allow_null=True)
    max_per_day = serializers.IntegerField(allow_null=True)
    undo_seconds = serializers.IntegerField()

    class Meta:
        ref_name = "OutboundPolicy"


class AgentSerializer(serializers.ModelSerializer[Agent]):
    address = serializers.CharField(read_only=True)
    hold_on = serializers.ListField(child=serializers.CharField(), read_only=True)
    outbound = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = ["agent_id", "address", "display_name", "policy", "hold_on", "is_active", "created_at", "outbound"]
        ref_name = "Agent"

    @extend_schema_field(OutboundPolicySerializer)
    def get_outbound(self, agent: Agent) -> dict[str, object]:
        return OutboundPolicy.for_agent(agent).as_dict()


# An email local part (directory.models.AGENT_ID_RE), in either case: ids are stored lower-cased.
AGENT_ID_PATTERN = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
_DISPLAY_NAME = {"max_length": 200, "allow_blank": True, "help_text": "the From display name of the agent's mail"}


class AgentCreateSerializer(InputSerializer):
    """A new agent: its id (the local part of its address), display name and policy."""

    agent_id = StrictCharField(
        max_length=64,
        validators=[RegexValidator(AGENT_ID_PATTERN, validate_agent_id.message, code="invalid_agent_id")],
    )
    display_name = HeaderTextField(required=False, default="", **_DISPLAY_NAME)
    policy = StrictChoiceField(choices=Agent.Policy.choices, required=False, default=Agent.Policy.OPEN)

    class Meta:
        ref_name = "AgentCreate"


# An address or "@domain", ASCII, as directory.services.allowed_recipient_clean accepts
# (it also takes some this refuses: the schema states a rule no looser than the server's).
ALLOWED_RECIPIENT_PATTERN = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]*@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{1,63}$"


class OutboundInput(InputSerializer):
    """How the agent's outbound mail is governed; a field left out keeps its value."""

    approval = StrictChoiceField(choices=OutboundPolicy.Approval.choices, required=False)
    allowed_recipients = serializers.ListField(
        child=StrictCharField(
            max_length=320,
            validators=[RegexValidator(ALLOWED_RECIPIENT_PATTERN, "An address or @domain.", code="invalid_field")],
        ),
        required=False,
        max_length=MAX_ALLOWED_RECIPIENTS,
        help_text='addresses ("a@example.com") and domains ("@example.com"); empty: anyone',
    )
    max_per_hour = StrictIntegerField(required=False, allow_null=True, min_value=1, help_text="null: no quota")
    max_per_day = StrictIntegerField(required=False, allow_null=True, min_value=1, help_text="null: no quota")
    undo_seconds = StrictIntegerField(required=False, min_value=0, max_value=MAX_UNDO_SECONDS)

    class Meta:
        ref_name = "OutboundPolicyUpdate"


class AgentUpdateSerializer(InputSerializer):
    """What an operator may change about an agent."""

    display_name = HeaderTextField(required=False, **_DISPLAY_NAME)
    policy = StrictChoiceField(choices=Agent.Policy.choices, required=False)
    hold_on = serializers.ListField(
        child=StrictChoiceField(choices=Agent.HoldFlag.choices),
        required=False,
        max_length=len(Agent.HoldFlag.values),
        help_text="Safety flags that hold inbound mail for review (the moderation queue) instead of the inbox",
    )
    outbound = OutboundInput(required=False)

    class Meta:
        ref_name = "AgentUpdate"


class AgentWithTokenSerializer(AgentSerializer):
    token = serializers.CharField(help_text="shown once")

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "token"]
        ref_name = "AgentWithToken"


class AgentPageSerializer(serializers.Serializer[Any]):
    items = AgentSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()

    class Meta:
        ref_name = "AgentPage"


class TokenSerializer(serializers.Serializer[Any]):
    agent_id = serializers.CharField()
    token = serializers.CharField(help_text="shown once")

    class Meta:
        ref_name = "AgentToken"


class AgentListQuerySerializer(serializers.Serializer[Any]):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=25)
    cursor = CursorField()


class OperatorAPIView(APIView):
    permission_classes = [IsOperator]

    def agents(self, request: Request) -> QuerySet[Agent]:
        return Agent.objects.for_account(token_user(request).account)

    def agent_or_404(self, request: Request, agent_id: str) -> Agent:
        agent = self.agents(request).filter(agent_id=agent_id).first()
        if agent is None:
            raise NotFound("No such agent.", code="agent_not_found")
        return agent


def _agent_body(agent: Agent, token: str | None = None) -> dict[str, Any]:
    body = dict(AgentSerializer(agent).data)
    if token is not None:
        body["token"] = token
    return body


class AgentsView(OperatorAPIView):
    @extend_schema(
        operation_id="agents_list",
        summary="List the account's agents",
        parameters=[AgentListQuerySerializer],
        responses={200: AgentPageSerializer, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, AgentListQuerySerializer)
        qs = self.agents(request).order_by("created_at", "agent_id")
        if "cursor" in params:
            created_at, agent_id = cursor_decode(params["cursor"])
            qs = qs.filter(created_at__gt=created_at) | qs.filter(created_at=created_at, agent_id__gt=agent_id)
            qs = qs.order_by("created_at", "agent_id")
        limit = params["limit"]
        page = list(qs[: limit + 1])
        has_more = len(page) > limit
        page = page[:limit]
        next_cursor = cursor_encode(page[-1].created_at, page[-1].agent_id) if has_more else None
        return Response({"items": [_agent_body(a) for a in page], "next_cursor": next_cursor, "has_more": has_more})

    @extend_schema(
        operation_id="agents_create",
        summary="Create an agent; its token is returned once",
        request=AgentCreateSerializer,
        examples=[
            OpenApiExample(
                "A support agent",
                value={"agent_id": "support", "display_name": "Support bot", "policy": "open"},
                request_only=True,
            )
        ],
        responses={201: AgentWithTokenSerializer, **error_responses(400, 409, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        data = input_validate(AgentCreateSerializer, request.data)
        agent, issued = agent_create(
            agent_id=data["agent_id"],
            account=token_user(request).account,
            display_name=data["display_name"],
            policy=data["policy"],
        )
        return Response(_agent_body(agent, issued.plaintext), status=201)


class AgentView(OperatorAPIView):
    @extend_schema(
        operation_id="agents_get", summary="One agent", responses={200: AgentSerializer, **error_responses(404)}
    )
    def get(self, request: Request, agent_id: str) -> Response:
        return Response(_agent_body(self.agent_or_404(request, agent_id)))

    @extend_schema(
        operation_id="agents_update",
        summary="Change display name, policy or hold_on",
        request=AgentUpdateSerializer,
        responses={200: AgentSerializer, **error_responses(400, 404, 413, 415)},
    )
    def patch(self, request: Request, agent_id: str) -> Response:
        agent = self.agent_or_404(request, agent_id)
        data = input_validate(AgentUpdateSerializer, request.data)
        agent = agent_update(agent=agent, **data)
        return Response(_agent_body(agent))

    @extend_schema(
        operation_id="agents_deactivate",
        summary="Deactivate an agent (its mail stays; its tokens are revoked)",
        responses={204: OpenApiResponse(description="Deactivated"), **error_responses(404)},
    )
    def delete(self, request: Request, agent_id: str) -> Response:
        agent_deactivate(agent=self.agent_or_404(request, agent_id))
        return Response(status=204)


class AgentTokensView(OperatorAPIView):
    @extend_schema(
        operation_id="agents_token_rotate",
        summary="Revoke the agent's tokens and issue a new one (shown once)",
        request=None,
        responses={201: TokenSerializer, **error_responses(404, 409)},
    )
    def post(self, request: Request, agent_id: str) -> Response:
        agent = self.agent_or_404(request, agent_id)
        if not agent.is_active:
            raise Conflict("The agent is deactivated; its tokens would not work.", code="agent_inactive")
        issued = agent_token_rotate(agent=agent, label="rotated")
        return Response({"agent_id": agent.agent_id, "token": issued.plaintext}, status=201)


urlpatterns = [
    path("agents", AgentsView.as_view(), name="agents"),
    path("agents/<str:agent_id>", AgentView.as_view(), name="agent"),
    path("agents/<str:agent_id>/tokens", AgentTokensView.as_view(), name="agent-tokens"),
]
