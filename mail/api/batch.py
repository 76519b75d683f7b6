"""GET /v1/messages?ids=... and POST /v1/messages/batch: many messages in one request.

An id that is not one of the calling agent's messages (unknown, or another agent's) is
listed in ``not_found`` and never read or changed, as one message's 404 would have it."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from assmbl.inputs import input_validate
from assmbl.openapi import error_responses
from assmbl.query import query_params
from directory.models import Agent
from mail import services
from mail.api.common import AgentAPIView
from mail.api.schema import MessagesBatchSchema
from mail.models import Message
from mail.serializers import BatchUpdateInput, MessagesQuerySerializer, message_item


def _items(agent: Agent, ids: list[str]) -> dict[str, Any]:
    """``{items, not_found}``: the agent's messages among ``ids``, in the order given."""
    found = {m.pk: m for m in Message.objects.for_agent(agent).filter(pk__in=ids).as_items()}
    return {
        "items": [message_item(found[i]) for i in ids if i in found],
        "not_found": [i for i in ids if i not in found],
    }


class MessagesView(AgentAPIView):
    @extend_schema(
        operation_id="messages_get",
        summary="Several messages by id (without their raw MIME)",
        parameters=[MessagesQuerySerializer],
        responses={200: MessagesBatchSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, MessagesQuerySerializer)
        return Response(_items(self.agent(request), params["ids"]))


class MessagesBatchView(AgentAPIView):
    @extend_schema(
        operation_id="messages_batch_update",
        summary="Label, mark read or archive up to 100 messages in one transaction",
        request=BatchUpdateInput,
        examples=[
            OpenApiExample(
                "Triage a page",
                value={
                    "ids": ["msg_01", "msg_02"],
                    "add_labels": ["done"],
                    "remove_labels": ["triage"],
                    "is_read": True,
                },
                request_only=True,
            )
        ],
        responses={200: MessagesBatchSchema, **error_responses(400, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        agent = self.agent(request)
        data = input_validate(BatchUpdateInput, request.data)
        services.messages_batch_update(
            messages=Message.objects.for_agent(agent).filter(pk__in=data["ids"]),
            add_labels=data["add_labels"],
            remove_labels=data["remove_labels"],
            is_read=data.get("is_read"),
            archived=data.get("archived"),
        )
        return Response(_items(agent, data["ids"]))


urlpatterns = [
    path("messages", MessagesView.as_view(), name="messages"),
    path("messages/batch", MessagesBatchView.as_view(), name="messages-batch"),
]
