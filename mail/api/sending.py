"""Sending endpoints: POST /v1/send, reply, forward, GET /v1/sent and GET /v1/threads/{id}."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import path
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from assmbl.errors import NotFound
from assmbl.inputs import input_validate
from assmbl.openapi import error_responses
from assmbl.query import query_params
from mail.api.common import AgentAPIView, message_for_agent_or_404
from mail.api.schema import InboxItemPageSchema, SendAcceptedSchema, ThreadPageSchema
from mail.idempotency import IdempotentResult, send_idempotently
from mail.models import Message
from mail.pagination import page_after
from mail.sending import message_forward, message_reply, message_send, outgoing_parse
from mail.serializers import ForwardInput, ReplyInput, SendInput, SentQuerySerializer, ThreadQuerySerializer
from mail.threads import thread_messages

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    location=OpenApiParameter.HEADER,
    description="1 to 255 printable ASCII characters; the same key and body replay the first response",
)
_ACCEPTED = OpenApiResponse(response=SendAcceptedSchema, description="Queued for delivery (or a replay)")


def _respond(result: IdempotentResult) -> Response:
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return Response(result.body, status=result.status, headers=headers)


class IdempotentSendView(AgentAPIView):
    def run(self, request: Request, perform: Callable[[str], Message]) -> Response:
        result = send_idempotently(
            agent=self.agent(request),
            key=request.headers.get("Idempotency-Key"),
            path=request.path,
            data=request.data,
            perform=perform,
        )
        return _respond(result)


class SendView(IdempotentSendView):
    @extend_schema(
        operation_id="send",
        summary="Send a new message",
        request=SendInput,
        parameters=[IDEMPOTENCY_KEY],
        examples=[
            OpenApiExample(
                "A note with a custom header",
                value={
                    "to": "bob@example.com",
                    "cc": ["ops@example.com"],
                    "subject": "Order 42",
                    "body": "Your order shipped.",
                    "headers": {"X-Order-Id": "42"},
                },
                request_only=True,
            ),
        ],
        responses={202: _ACCEPTED, **error_responses(400, 409, 413, 415, 429)},
    )
    def post(self, request: Request) -> Response:
        agent = self.agent(request)
        data = input_validate(SendInput, request.data)
        outgoing = outgoing_parse(data)
        send_at = data.get("send_at")
        return self.run(
            request, lambda key: message_send(agent=agent, outgoing=outgoing, idempotency_key=key, send_at=send_at)
        )


class ReplyView(IdempotentSendView):
    @extend_schema(
        operation_id="message_reply",
        summary="Reply (or reply-all) to a message",
        request=ReplyInput,
        parameters=[IDEMPOTENCY_KEY],
        examples=[
            OpenApiExample("Reply to all", value={"body": "Thanks, received.", "reply_all": True}, request_only=True)
        ],
        responses={202: _ACCEPTED, **error_responses(400, 404, 409, 413, 415, 429)},
    )
    def post(self, request: Request, message_id: str) -> Response:
        agent = self.agent(request)
        original = message_for_agent_or_404(agent, message_id)
        data = input_validate(ReplyInput, request.data)
        return self.run(
            request,
            lambda key: message_reply(
                agent=agent,
                original=original,
                body=data.get("body"),
                html=data.get("html"),
                reply_all=data["reply_all"],
                attachment_ids=data.get("attachments") or [],
                idempotency_key=key,
                send_at=data.get("send_at"),
            ),
        )


class ForwardView(IdempotentSendView):
    @extend_schema(
        operation_id="message_forward",
        summary="Forward a message, the original attached",
        request=ForwardInput,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: _ACCEPTED, **error_responses(400, 404, 409, 413, 415, 429)},
    )
    def post(self, request: Request, message_id: str) -> Response:
        agent = self.agent(request)
        original = message_for_agent_or_404(agent, message_id)
        data = input_validate(ForwardInput, request.data)
        return self.run(
            request,
            lambda key: message_forward(
                agent=agent,
                original=original,
                to=data["to"],
                body=data.get("body"),
                idempotency_key=key,
                send_at=data.get("send_at"),
            ),
        )


class SentView(AgentAPIView):
    @extend_schema(
        operation_id="sent_list",
        summary="List sent messages",
        parameters=[SentQuerySerializer],
        responses={200: InboxItemPageSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, SentQuerySerializer)
        queryset = Message.objects.for_agent(self.agent(request)).outbound()
        if "q" in params:
            queryset = queryset.search(params["q"])
        return Response(page_after(queryset.as_items(), limit=params["limit"], after=params.get("cursor")).body())


class ThreadView(AgentAPIView):
    @extend_schema(
        operation_id="thread_get",
        summary="The messages of a thread, oldest first",
        parameters=[ThreadQuerySerializer],
        responses={200: ThreadPageSchema, **error_responses(400, 404)},
    )
    def get(self, request: Request, thread_id: str) -> Response:
        params = query_params(request, ThreadQuerySerializer)
        queryset = thread_messages(agent=self.agent(request), thread_id=thread_id).as_items()
        page = page_after(queryset, limit=params["limit"], after=params.get("cursor"))
        if not page.items and "cursor" not in params:
            raise NotFound("No such thread.", code="thread_not_found")
        return Response({"thread_id": thread_id, **page.body()})


urlpatterns = [
    path("send", SendView.as_view(), name="send"),
    path("sent", SentView.as_view(), name="sent"),
    path("messages/<str:message_id>/reply", ReplyView.as_view(), name="message-reply"),
    path("messages/<str:message_id>/forward", ForwardView.as_view(), name="message-forward"),
    path("threads/<str:thread_id>", ThreadView.as_view(), name="thread"),
]
