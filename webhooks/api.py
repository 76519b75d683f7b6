"""Webhook endpoints (/v1/webhooks) and the pull side of the event log (/v1/events)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assmbl import inputs
from assmbl.errors import ApiError, NotFound, ValidationFailed
from assmbl.inputs import StrictBooleanField, StrictCharField, input_validate
from assmbl.openapi import error_responses
from directory.auth import IsAgent, TokenUser, token_user
from webhooks.events import MAX_WAIT, Cursor, Page, event_item, events_page, events_wait
from webhooks.models import Delivery, Endpoint, Event
from webhooks.services import (
    endpoint_create,
    endpoint_delete,
    endpoint_replay,
    endpoint_rotate_secret,
    endpoint_update,
)
from webhooks.waits import ASYNC_WAITS, Deferred, sse_event, wait_begin


class IsAgentOrOperator(BasePermission):
    message = "This endpoint needs an agent or operator token."

    def has_permission(self, request: Request, view: Any) -> bool:
        user: object = request.user  # the stubs type it as Django's user model
        return isinstance(user, TokenUser)


def _endpoints_for(user: TokenUser) -> QuerySet[Endpoint]:
    """An operator sees its account's endpoints; an agent only those it registered."""
    if user.is_operator:
        return Endpoint.objects.for_account(user.account)
    assert user.agent is not None
    return Endpoint.objects.registered_by(user.agent)


def _endpoint_or_404(user: TokenUser, endpoint_id: str) -> Endpoint:
    endpoint = _endpoints_for(user).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No such webhook.", code="webhook_not_found")
    return endpoint


def _reject_unknown(data: Any, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed) if hasattr(data, "keys") else []
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter: {unknown[0]}.", code="unknown_parameter", details={"unknown": unknown}
        )


class AgentsNotAllowed(ApiError):
    # The token's kind decides, not the body's shape: a 403, like a global sender rule
    # asked for with an agent token.
    status_code = 403
    code = "agents_not_allowed"
    default_detail = "An agent token registers webhooks for its own agent only."


# The receiver must be reachable: http(s), on a public address (webhooks.egress decides).
_URL = {"type": "string", "format": "uri", "maxLength": 2000, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"}


@extend_schema_field(_URL)
class WebhookUrlField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=2000, **kwargs)


@extend_schema_field({"type": "string", "enum": list(Event.Type.values)})
class EventTypeField(StrictCharField):
    """One of the event types; webhooks.services refuses the others (unknown_event_type)."""


class EndpointOutput(serializers.ModelSerializer[Endpoint]):
    agents = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "url",
            "description",
            "agents",
            "all_agents",
            "event_types",
            "enabled",
            "failing_since",
            "disabled_reason",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]

    def get_agents(self, endpoint: Endpoint) -> list[str]:
        return sorted(a.agent_id for a in endpoint.agents.all())


class EndpointWithSecretOutput(EndpointOutput):
    secret = serializers.CharField(help_text="whsec_...; shown only here and on rotation")

    class Meta(EndpointOutput.Meta):
        fields = [*EndpointOutput.Meta.fields, "secret"]


def _out(endpoint: Endpoint, *, with_secret: bool = False) -> dict[str, Any]:
    data = dict(EndpointOutput(endpoint).data)
    if with_secret:
        data["secret"] = endpoint.secret
    return data


class WebhookListView(APIView):
    permission_classes = [IsAgentOrOperator]

    @extend_schema_serializer(component_name="WebhookCreate")
    class InputSerializer(inputs.InputSerializer):
        """A new webhook endpoint."""

        url = WebhookUrlField()
        event_types = serializers.ListField(child=EventTypeField(), required=False, max_length=20)
        enabled = StrictBooleanField(required=False, default=True)
        description = StrictCharField(max_length=200, required=False, default="", allow_blank=True)
        agents = serializers.ListField(
            child=StrictCharField(max_length=64),
            required=False,
            max_length=1000,
            help_text="operator tokens only (an agent token: absent, or its own id)",
        )

    @extend_schema(
        operation_id="webhooks_list",
        responses={200: inline_serializer("WebhookList", {"items": EndpointOutput(many=True)}), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        endpoints = _endpoints_for(token_user(request)).prefetch_related("agents")
        return Response({"items": [_out(e) for e in endpoints]})

    @extend_schema(
        operation_id="webhooks_create",
        request=InputSerializer,
        responses={201: EndpointWithSecretOutput, **error_responses(400, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        data = input_validate(self.InputSerializer, request.data)
        user = token_user(request)
        if user.is_operator:
            endpoint = endpoint_create(
                account=user.account,
                url=data["url"],
                agent_ids=data.get("agents"),
                event_types=data.get("event_types"),
                enabled=data["enabled"],
                description=data["description"],
            )
        else:
            assert user.agent is not None
            if data.get("agents") not in (None, [user.agent.agent_id]):
                raise AgentsNotAllowed()
            endpoint = endpoint_create(
                account=user.account,
                url=data["url"],
                created_by=user.agent,
                event_types=data.get("event_types"),
                enabled=data["enabled"],
                description=data["description"],
            )
        return Response(_out(endpoint, with_secret=True), status=201)


class WebhookDetailView(APIView):
    permission_classes = [IsAgentOrOperator]

    @extend_schema_serializer(component_name="WebhookUpdate")
    class InputSerializer(inputs.InputSerializer):
        """What may change about a webhook endpoint (agents and all_agents: operator tokens only)."""

        url = WebhookUrlField(required=False)
        event_types = serializers.ListField(child=EventTypeField(), required=False, max_length=20)
        enabled = StrictBooleanField(required=False)
        description = StrictCharField(max_length=200, required=False, allow_blank=True)
        agents = serializers.ListField(child=StrictCharField(max_length=64), required=False, max_length=1000)
        all_agents = StrictBooleanField(required=False)

    @extend_schema(operation_id="webhooks_retrieve", responses={200: EndpointOutput, **error_responses(404)})
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(_out(_endpoint_or_404(token_user(request), endpoint_id)))

    @extend_schema(
        operation_id="webhooks_update",
        request=InputSerializer,
        responses={200: EndpointOutput, **error_responses(400, 404, 413, 415)},
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint_or_404(token_user(request), endpoint_id)
        data = input_validate(self.InputSerializer, request.data)
        if not token_user(request).is_operator and ("agents" in data or "all_agents" in data):
            raise AgentsNotAllowed()
        endpoint = endpoint_update(
            endpoint=endpoint,
            url=data.get("url"),
            event_types=data.get("event_types"),
            enabled=data.get("enabled"),
            description=data.get("description"),
            agent_ids=data.get("agents"),
            all_agents=data.get("all_agents"),
        )
        return Response(_out(endpoint))

    @extend_schema(
        operation_id="webhooks_delete",
        responses={204: OpenApiResponse(description="Deleted"), **error_responses(404)},
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        endpoint_delete(endpoint=_endpoint_or_404(token_user(request), endpoint_id))
        return Response(status=204)


class WebhookRotateSecretView(APIView):
    permission_classes = [IsAgentOrOperator]

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        request=None,
        responses={200: EndpointWithSecretOutput, **error_responses(404)},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = endpoint_rotate_secret(endpoint=_endpoint_or_404(token_user(request), endpoint_id))
        return Response(_out(endpoint, with_secret=True))


class WebhookReplayView(APIView):
    permission_classes = [IsAgentOrOperator]

    @extend_schema_serializer(component_name="WebhookReplay")
    class InputSerializer(inputs.InputSerializer):
        """One event again (event_id), or every event of a time range (since, until)."""

        event_id = StrictCharField(max_length=40, required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False, help_text="after since")

        schema_extra = {
            "oneOf": [
                {"required": ["event_id"], "not": {"required": ["since"]}},
                {"required": ["since"], "not": {"required": ["event_id"]}},
            ]
        }

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("event_id" in attrs) == ("since" in attrs):
                raise ValidationFailed(
                    "Give either event_id, or since (and optionally until).", code="replay_range_required"
                )
            if "until" in attrs and "since" in attrs and attrs["until"] <= attrs["since"]:
                raise ValidationFailed("until must be after since.", code="invalid_range")
            return attrs

    @extend_schema(
        operation_id="webhooks_replay",
        request=InputSerializer,
        responses={
            202: inline_serializer("WebhookReplayed", {"replayed": serializers.IntegerField()}),
            **error_responses(400, 404, 413, 415),
        },
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint_or_404(token_user(request), endpoint_id)
        data = input_validate(self.InputSerializer, request.data)
        count = endpoint_replay(
            endpoint=endpoint, event_id=data.get("event_id"), since=data.get("since"), until=data.get("until")
        )
        return Response({"replayed": count}, status=202)


class DeliveryOutput(serializers.ModelSerializer[Delivery]):
    event_id = serializers.CharField(source="webhook_id")
    event_type = serializers.CharField(source="event.type")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status",
            "last_error",
            "last_attempt_at",
            "succeeded_at",
            "created_at",
        ]


class WebhookDeliveriesView(APIView):
    permission_classes = [IsAgentOrOperator]

    @extend_schema(
        operation_id="webhooks_deliveries",
        parameters=[
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100}, description="default 25"),
            OpenApiParameter("state", OpenApiTypes.STR, enum=Delivery.State.values),
        ],
        responses={
            200: inline_serializer("WebhookDeliveryList", {"items": DeliveryOutput(many=True)}),
            **error_responses(400, 404),
        },
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = _endpoint_or_404(token_user(request), endpoint_id)
        limit = _int_param(request, "limit", default=25, low=1, high=100)
        _reject_unknown(request.query_params, {"limit", "state"})
        rows = Delivery.objects.for_endpoint(endpoint).select_related("event")
        state = request.query_params.get("state")
        if state is not None:
            if state not in Delivery.State.values:
                raise ValidationFailed(
                    f"state must be one of {', '.join(Delivery.State.values)}.", code="invalid_state"
                )
            rows = rows.filter(state=state)
        return Response({"items": DeliveryOutput(rows[:limit], many=True).data})


def _int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be an integer from {low} to {high}.", code=f"invalid_{name}")
    return value


class EventListView(APIView):
    """GET /v1/events?after=&limit=&wait= — the calling agent's events, oldest first."""

    permission_classes = [IsAgent]

    @extend_schema(
        operation_id="events_list",
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "string", "minLength": 1, "maxLength": 200, "format": "event-cursor"},
                description="next_cursor of the previous page (opaque)",
            ),
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100}, description="default 100"),
            OpenApiParameter(
                "wait",
                {"type": "integer", "minimum": 0, "maximum": MAX_WAIT},
                description="long-poll: seconds to wait for an event (default 0)",
            ),
        ],
        responses={
            200: inline_serializer(
                "EventList",
                {
                    "items": inline_serializer(
                        "EventItem",
                        {
                            "id": serializers.CharField(),
                            "type": serializers.CharField(),
                            "timestamp": serializers.DateTimeField(),
                            "data": serializers.DictField(),
                        },
                        many=True,
                    ),
                    "next_cursor": serializers.CharField(),
                    "has_more": serializers.BooleanField(),
                },
            ),
            **error_responses(400, 410, 429),
        },
    )
    def get(self, request: Request) -> Response:
        _reject_unknown(request.query_params, {"after", "limit", "wait"})
        limit = _int_param(request, "limit", default=100, low=1, high=100)
        wait = _int_param(request, "wait", default=0, low=0, high=MAX_WAIT)
        after_raw = request.query_params.get("after")
        after = Cursor.decode(after_raw) if after_raw is not None else None
        user = token_user(request)
        agent = user.agent
        assert agent is not None  # IsAgent
        if wait and request.META.get(ASYNC_WAITS):
            page = events_page(agent=agent, after=after, limit=limit)
            if not page.events:
                # The ASGI layer waits on the event loop, holding no thread (webhooks/waits.py).
                deferred = wait_begin(
                    token_prefix=user.token.prefix, agent=agent, after=after, limit=limit, seconds=wait
                )
                return _deferring(Response(_page_body(page)), deferred)
        elif wait:
            page = events_wait(agent=agent, after=after, limit=limit, wait=wait)
        else:
            page = events_page(agent=agent, after=after, limit=limit)
        return Response(_page_body(page))


def _page_body(page: Page) -> dict[str, Any]:
    return {"items": [event_item(e) for e in page.events], "next_cursor": page.next_cursor, "has_more": page.has_more}


def _deferring(response: Response, deferred: Deferred) -> Response:
    response.deferred = deferred  # type: ignore[attr-defined]  # read by assmbl/asgi.py
    return response


class EventStreamView(APIView):
    """GET /v1/events/stream — the calling agent's events as Server-Sent Events."""

    permission_classes = [IsAgent]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # A client of the stream asks for text/event-stream; its errors are the JSON envelope.
        return JSONRenderer(), "application/json"

    @extend_schema(
        operation_id="events_stream",
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "string", "minLength": 1, "maxLength": 200, "format": "event-cursor"},
                description="start after this cursor (next_cursor of GET /v1/events); the Last-Event-ID header wins",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "description": "the cursor just past this event"},
                        "event": {"type": "string", "description": "the event's type"},
                        "data": {"type": "string", "description": "the event, as an item of GET /v1/events (JSON)"},
                    },
                },
                description="Server-Sent Events: `id: <cursor>`, `event: <type>`, `data: <event JSON>`; "
                "a `: heartbeat` comment when quiet",
            ),
            **error_responses(400, 410, 429),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        _reject_unknown(request.query_params, {"after"})
        raw = request.headers.get("Last-Event-ID") or request.query_params.get("after")
        after = Cursor.decode(raw) if raw else None
        user = token_user(request)
        agent = user.agent
        assert agent is not None  # IsAgent
        # Refuses an expired cursor (410) before any byte of the stream goes out.
        page = events_page(agent=agent, after=after, limit=100)
        if request.META.get(ASYNC_WAITS):
            deferred = wait_begin(
                token_prefix=user.token.prefix, agent=agent, after=after, limit=100, seconds=0, stream=True
            )
            response = HttpResponse(b"", content_type="text/event-stream")
            response.deferred = deferred  # type: ignore[attr-defined]  # read by assmbl/asgi.py
            return response
        # Served without the ASGI layer (WSGI, the test client): what there is now, then the
        # end of the stream; the client reconnects with Last-Event-ID, as after any drop.
        body = b"retry: 2000\n\n" + b"".join(
            sse_event(event_item(e), Cursor(e.seq, int(e.created_at.timestamp() * 1000)).encode()) for e in page.events
        )
        return HttpResponse(body, content_type="text/event-stream")
