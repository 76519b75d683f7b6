"""Drafts: POST/GET /v1/drafts, GET/PATCH/DELETE /v1/drafts/{id}, POST /v1/drafts/{id}/send.

Another agent's draft is a 404, exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from assmbl.inputs import CursorField, input_validate
from assmbl.openapi import error_responses
from assmbl.query import cursor_decode, cursor_encode, query_params
from mail.api.common import AgentAPIView, message_for_agent_or_404
from mail.api.schema import SendAcceptedSchema
from mail.api.sending import IDEMPOTENCY_KEY, IdempotentSendView
from mail.drafts import draft_create, draft_delete, draft_get, draft_send, draft_update
from mail.models import Draft
from mail.serializers import DraftInput, DraftUpdateInput, rfc3339


class DraftSchema(serializers.Serializer[Any]):
    DraftID = serializers.CharField()
    AgentID = serializers.CharField()
    To = serializers.ListField(child=serializers.CharField())
    Cc = serializers.ListField(child=serializers.CharField())
    Bcc = serializers.ListField(child=serializers.CharField())
    ReplyTo = serializers.ListField(child=serializers.CharField())
    Subject = serializers.CharField(allow_blank=True)
    Body = serializers.CharField(allow_null=True)
    Html = serializers.CharField(allow_null=True)
    Headers = serializers.DictField(child=serializers.CharField())
    Attachments = serializers.ListField(child=serializers.CharField())
    InReplyTo = serializers.CharField(allow_null=True)
    MessageID = serializers.CharField(allow_null=True, help_text="the message it was sent as; null until sent")
    SendAt = serializers.DateTimeField(allow_null=True)
    CreatedAt = serializers.DateTimeField()
    UpdatedAt = serializers.DateTimeField()

    class Meta:
        ref_name = "Draft"


class DraftPageSchema(serializers.Serializer[Any]):
    items = DraftSchema(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()

    class Meta:
        ref_name = "DraftPage"


class DraftListQuerySerializer(serializers.Serializer[Any]):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=25)
    cursor = CursorField()


def draft_body(draft: Draft) -> dict[str, Any]:
    return {
        "DraftID": draft.id,
        "AgentID": draft.agent.agent_id,
        "To": list(draft.to),
        "Cc": list(draft.cc),
        "Bcc": list(draft.bcc),
        "ReplyTo": list(draft.reply_to),
        "Subject": draft.subject,
        "Body": draft.body,
        "Html": draft.html,
        "Headers": dict(draft.headers),
        "Attachments": list(draft.attachment_ids),
        "InReplyTo": draft.in_reply_to_id,
        "MessageID": draft.message_id,
        "SendAt": rfc3339(draft.send_at),
        "CreatedAt": rfc3339(draft.created_at),
        "UpdatedAt": rfc3339(draft.updated_at),
    }


class DraftsView(AgentAPIView):
    @extend_schema(
        operation_id="drafts_list",
        summary="List the agent's unsent drafts, oldest first",
        parameters=[DraftListQuerySerializer],
        responses={200: DraftPageSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, DraftListQuerySerializer)
        queryset = Draft.objects.filter(agent=self.agent(request), message__isnull=True).select_related("agent")
        if "cursor" in params:
            created_at, last_id = cursor_decode(params["cursor"])
            queryset = queryset.filter(created_at__gt=created_at) | queryset.filter(
                created_at=created_at, id__gt=last_id
            )
        limit = params["limit"]
        rows = list(queryset.order_by("created_at", "id")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = cursor_encode(rows[-1].created_at, rows[-1].id) if has_more else None
        return Response({"items": [draft_body(d) for d in rows], "next_cursor": next_cursor, "has_more": has_more})

    @extend_schema(
        operation_id="drafts_create",
        summary="Create a draft (or a reply draft: in_reply_to, reply_all)",
        request=DraftInput,
        responses={201: DraftSchema, **error_responses(400, 404, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        agent = self.agent(request)
        data = input_validate(DraftInput, request.data)
        original = message_for_agent_or_404(agent, data.pop("in_reply_to")) if data.get("in_reply_to") else None
        reply_all = data.pop("reply_all", False)
        data.pop("in_reply_to", None)
        draft = draft_create(agent=agent, data=data, in_reply_to=original, reply_all=reply_all)
        return Response(draft_body(draft), status=201)


class DraftView(AgentAPIView):
    @extend_schema(
        operation_id="drafts_get", summary="Read a draft", responses={200: DraftSchema, **error_responses(404)}
    )
    def get(self, request: Request, draft_id: str) -> Response:
        return Response(draft_body(draft_get(agent=self.agent(request), draft_id=draft_id)))

    @extend_schema(
        operation_id="drafts_update",
        summary="Change a draft",
        request=DraftUpdateInput,
        responses={200: DraftSchema, **error_responses(400, 404, 409, 413, 415)},
    )
    def patch(self, request: Request, draft_id: str) -> Response:
        draft = draft_get(agent=self.agent(request), draft_id=draft_id)
        data = input_validate(DraftUpdateInput, request.data)
        return Response(draft_body(draft_update(draft=draft, data=data)))

    @extend_schema(
        operation_id="drafts_delete",
        summary="Delete a draft",
        responses={204: OpenApiResponse(description="Deleted"), **error_responses(404)},
    )
    def delete(self, request: Request, draft_id: str) -> Response:
        draft_delete(draft=draft_get(agent=self.agent(request), draft_id=draft_id))
        return Response(status=204)


class DraftSendView(IdempotentSendView):
    @extend_schema(
        operation_id="drafts_send",
        summary="Send a draft (as POST /v1/send); the draft keeps its MessageID",
        request=None,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            202: OpenApiResponse(response=SendAcceptedSchema, description="Queued, scheduled or held (or a replay)"),
            **error_responses(400, 404, 409, 413, 429),
        },
    )
    def post(self, request: Request, draft_id: str) -> Response:
        agent = self.agent(request)
        return self.run(request, lambda key: draft_send(agent=agent, draft_id=draft_id, idempotency_key=key))


urlpatterns = [
    path("drafts", DraftsView.as_view(), name="drafts"),
    path("drafts/<str:draft_id>", DraftView.as_view(), name="draft"),
    path("drafts/<str:draft_id>/send", DraftSendView.as_view(), name="draft-send"),
]
