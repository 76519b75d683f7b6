"""The directory API: who may reach an agent (trusted senders, allow and block rules) and
how agents of this deployment find each other.

Agent tokens see and change their own entries; operator tokens act for any agent of their
account (``agent_id``) or for the whole account (``scope: "account"``). Nothing here reaches
past the token's account: global rules (every account) are made by staff in the admin.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from django.db.models import Q
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assmbl.errors import ApiError, NotFound, ValidationFailed
from assmbl.inputs import SPACE_CLASS, InputSerializer, StrictCharField, StrictChoiceField, input_validate
from assmbl.openapi import error_responses
from assmbl.query import query_params
from directory.auth import TokenUser
from directory.models import Agent, Sender, SenderRule
from directory.services import SenderAction, sender_entry_delete
from mail.addresses import address_agent_id
from mail.serializers import rfc3339
from mail.trust import sender_entry_create


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"
    default_detail = "This token may not do that."


def sender_entry_item(entry: Sender | SenderRule) -> dict[str, Any]:
    if isinstance(entry, Sender):
        return {
            "id": f"snd_{entry.pk}",
            "kind": "sender",
            "address_or_domain": entry.address,
            "status": entry.status,
            "scope": "agent",
            "agent_id": entry.agent.agent_id,
            "last_seen_at": rfc3339(entry.last_seen_at),
            "message_count": entry.message_count,
            "verified_at": rfc3339(entry.verified_at),
            "created_at": rfc3339(entry.created_at),
        }
    return {
        "id": f"rul_{entry.pk}",
        "kind": "rule",
        "address_or_domain": entry.pattern,
        "status": "blocked" if entry.action == SenderRule.Action.BLOCK else "allowed",
        "action": entry.action,
        "scope": entry.scope,
        "agent_id": entry.agent.agent_id if entry.agent else None,
        "note": entry.note,
        "created_at": rfc3339(entry.created_at),
    }


def _user(request: Request) -> TokenUser:
    user: object = request.user  # the stubs type it as Django's user model
    assert isinstance(user, TokenUser)
    return user


def _agent_for(user: TokenUser, agent_id: str | None) -> Agent | None:
    """The agent an entry is for: the token's own agent, or (operator) one of its account."""
    if user.agent is not None:
        if agent_id and agent_id.strip().lower() != user.agent.agent_id:
            raise NotFound("No such agent.", code="agent_not_found")
        return user.agent
    if not agent_id:
        return None
    agent = Agent.objects.for_account(user.account).filter(agent_id=agent_id.strip().lower()).first()
    if agent is None:
        raise NotFound("No such agent.", code="agent_not_found")
    return agent


# directory.services.sender_pattern_clean's rule, as written by a client: an address
# (anything without white space or NUL, then @) or a bare domain of two or more labels of
# letters, digits and hyphens (an IDN in its xn-- form); case and a trailing dot do not matter.
_LABEL = "[A-Za-z0-9-]{1,63}"
SENDER_PATTERN = rf"^([^@\u0000{SPACE_CLASS}]+@)?{_LABEL}(\.{_LABEL})+\.?$"


class SenderCreateInput(InputSerializer):
    """A sender entry: trust an address, or allow or block an address or a domain."""

    address_or_domain = StrictCharField(
        max_length=320,
        validators=[RegexValidator(SENDER_PATTERN, "An address (a@example.com) or a domain (example.com).")],
    )
    action = StrictChoiceField(choices=list(SenderAction.ALL), help_text="trust takes an address, not a domain")
    agent_id = StrictCharField(required=False, allow_blank=True, max_length=64)
    scope = StrictChoiceField(choices=["agent", "account"], required=False, default="agent")
    note = StrictCharField(required=False, allow_blank=True, max_length=200, default="")

    # "trust" is per address: a domain is allowed or blocked, never trusted.
    schema_extra = {
        "anyOf": [
            {"properties": {"action": {"not": {"const": SenderAction.TRUST}}}},
            {"properties": {"address_or_domain": {"pattern": "@"}}},
        ]
    }

    class Meta:
        ref_name = "SenderCreate"


class SenderEntrySchema(serializers.Serializer[Any]):
    """Documentation only: ``sender_entry_item`` of a Sender (kind "sender") or a SenderRule
    (kind "rule"); the fields of the other kind are absent."""

    id = serializers.CharField(help_text="snd_... or rul_...")
    kind = serializers.ChoiceField(choices=["sender", "rule"])
    address_or_domain = serializers.CharField()
    status = serializers.CharField()
    scope = serializers.ChoiceField(choices=["agent", "account"])
    agent_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField(allow_null=True)
    last_seen_at = serializers.DateTimeField(allow_null=True, required=False)
    message_count = serializers.IntegerField(required=False)
    verified_at = serializers.DateTimeField(allow_null=True, required=False)
    action = serializers.CharField(required=False)
    note = serializers.CharField(allow_blank=True, required=False)

    class Meta:
        ref_name = "SenderEntry"


class SenderListSchema(serializers.Serializer[Any]):
    items = SenderEntrySchema(many=True)

    class Meta:
        ref_name = "SenderList"


class AgentLookupItemSchema(serializers.Serializer[Any]):
    agent_id = serializers.CharField()
    address = serializers.CharField()
    display_name = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "AgentLookupItem"


class AgentLookupListSchema(serializers.Serializer[Any]):
    items = AgentLookupItemSchema(many=True)

    class Meta:
        ref_name = "AgentLookupList"


class SenderListQuery(serializers.Serializer[Any]):
    agent_id = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="operator tokens: the agent to act for; agent tokens: their own or absent",
    )
    status = serializers.ChoiceField(
        choices=[*Sender.Status.values, "allowed"], required=False, help_text="only entries with this status"
    )


class AgentLookupQuery(serializers.Serializer[Any]):
    q = serializers.CharField(
        max_length=320, help_text="an agent id or address", validators=[RegexValidator(r"\S", "q is required.")]
    )


class SendersView(APIView):
    """GET lists entries with status, last seen and message count; POST adds one."""

    @extend_schema(
        operation_id="directory_senders_list",
        summary="Trusted senders and allow/block rules",
        parameters=[SenderListQuery],
        responses={200: SenderListSchema, **error_responses(400, 404)},
    )
    def get(self, request: Request) -> Response:
        user = _user(request)
        params = query_params(request, SenderListQuery)
        agent = _agent_for(user, params.get("agent_id"))
        if agent is not None:
            senders = Sender.objects.filter(agent=agent)
            rules = SenderRule.objects.filter(agent=agent)
        else:
            senders = Sender.objects.filter(agent__account=user.account)
            rules = SenderRule.objects.for_account(user.account)
        wanted = params.get("status", "")
        if wanted:
            senders = senders.filter(status=wanted)
        items = [
            sender_entry_item(s) for s in senders.select_related("agent").order_by("-last_seen_at", "address")[:1000]
        ]
        if not wanted or wanted in ("blocked", "allowed"):
            items += [
                sender_entry_item(r)
                for r in rules.select_related("agent").order_by("pattern")[:1000]
                if not wanted or sender_entry_item(r)["status"] == wanted
            ]
        return Response({"items": items})

    @extend_schema(
        operation_id="directory_senders_create",
        summary="Add a sender entry or an allow/block rule",
        request=SenderCreateInput,
        responses={201: SenderEntrySchema, **error_responses(400, 403, 404, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        user = _user(request)
        if isinstance(request.data, dict) and request.data.get("scope") == "global":
            # A rule for every account is staff's (the admin): no token reaches past its account.
            # Named apart from the schema's enum so that a client that used it learns why.
            raise ValidationFailed(
                "A global rule applies to every account; staff make it in the admin. Use scope: account.",
                code="scope_not_allowed",
            )
        values = input_validate(SenderCreateInput, request.data)
        account, agent = user.account, None
        if values["scope"] == "account":
            if not user.is_operator:
                raise Forbidden("Only an operator token may add a rule for the whole account.", code="forbidden_scope")
            if values.get("agent_id"):
                raise ValidationFailed("scope: account covers every agent; leave out agent_id.", code="invalid_scope")
        else:
            agent = _agent_for(user, values.get("agent_id") or None)
            if agent is None:
                raise ValidationFailed(
                    "agent_id is required with an operator token (or scope: account).", code="agent_id_required"
                )
        entry = sender_entry_create(
            agent=agent,
            account=account,
            address_or_domain=values["address_or_domain"],
            action=values["action"],
            note=values["note"],
        )
        return Response(sender_entry_item(entry), status=status.HTTP_201_CREATED)


class SenderDetailView(APIView):
    @extend_schema(
        operation_id="directory_senders_delete",
        summary="Remove a sender entry or a rule",
        responses={204: OpenApiResponse(description="Deleted"), **error_responses(404)},
    )
    def delete(self, request: Request, entry_id: str) -> Response:
        user = _user(request)
        kind, _, raw_pk = entry_id.partition("_")
        entry: Sender | SenderRule | None = None
        if raw_pk.isdigit():
            pk = int(raw_pk)
            if kind == "snd":
                entry = Sender.objects.filter(pk=pk, **_scope(user)).first()
            elif kind == "rul":
                rules = SenderRule.objects.filter(pk=pk)
                if user.is_operator:
                    entry = rules.for_account(user.account).first()
                else:
                    entry = rules.filter(agent=user.agent).first()
        if entry is None:
            raise NotFound("No such directory entry.", code="sender_not_found")
        sender_entry_delete(entry=entry)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _scope(user: TokenUser) -> dict[str, Any]:
    return {"agent": user.agent} if user.agent is not None else {"agent__account": user.account}


class AgentLookupView(APIView):
    """Find agents of this deployment by id or address: agent_id, address, display_name only."""

    @extend_schema(
        operation_id="directory_agents_lookup",
        summary="Find agents of this deployment by id or address",
        parameters=[AgentLookupQuery],
        responses={200: AgentLookupListSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        q = query_params(request, AgentLookupQuery)["q"].strip().lower()
        if "@" in q:
            q = address_agent_id(q)
            if not q:  # another domain's address, or none of an agent's
                return Response({"items": []})
        agents = Agent.objects.active().filter(Q(agent_id__icontains=q) | Q(display_name__icontains=q))
        # Exact matches first, then the rest alphabetically; a small page, not an export.
        found = sorted(agents[:50], key=lambda a: (a.agent_id != q, a.agent_id))[:25]
        return Response(
            {"items": [{"agent_id": a.agent_id, "address": a.address, "display_name": a.display_name} for a in found]}
        )


urlpatterns = [
    path("directory/senders", SendersView.as_view(), name="directory-senders"),
    path("directory/senders/<str:entry_id>", SenderDetailView.as_view(), name="directory-sender"),
    path("directory/agents", AgentLookupView.as_view(), name="directory-agents"),
]
