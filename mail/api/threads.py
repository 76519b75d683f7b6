"""GET /v1/threads (the mailbox's conversations, newest activity first) and the PATCHes
that change every message of one thread: labels, read state, archive."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from assmbl.inputs import input_validate
from assmbl.openapi import error_responses
from assmbl.query import cursor_encode, query_params
from mail import services
from mail.api.common import AgentAPIView
from mail.api.schema import ThreadItemSchema, ThreadListPageSchema
from mail.serializers import (
    ArchivePatchSerializer,
    LabelsPatchSerializer,
    ReadPatchSerializer,
    ThreadsQuerySerializer,
    thread_item,
)
from mail.threads import threads_filtered


class ThreadListView(AgentAPIView):
    @extend_schema(
        operation_id="threads_list",
        summary="List conversations, newest activity first",
        parameters=[ThreadsQuerySerializer],
        responses={200: ThreadListPageSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, ThreadsQuerySerializer)
        threads = threads_filtered(
            agent=self.agent(request),
            label=params.get("label"),
            is_read=params.get("is_read"),
            include_archived=params["include_archived"],
            q=params.get("q"),
        )
        if "cursor" in params:
            threads = threads.before(*params["cursor"])
        limit = params["limit"]
        rows: list[Any] = list(threads.in_activity_order()[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = cursor_encode(rows[-1].last_message_at, rows[-1].thread_id) if has_more else None
        return Response({"items": [thread_item(t) for t in rows], "next_cursor": next_cursor, "has_more": has_more})


class ThreadLabelsView(AgentAPIView):
    @extend_schema(
        operation_id="thread_labels_patch",
        summary="Add and remove labels on every message of a thread, atomically",
        request=LabelsPatchSerializer,
        examples=[OpenApiExample("File it", value={"add": ["billing"], "remove": ["triage"]}, request_only=True)],
        responses={200: ThreadItemSchema, **error_responses(400, 404, 413, 415)},
    )
    def patch(self, request: Request, thread_id: str) -> Response:
        data = input_validate(LabelsPatchSerializer, request.data)
        thread = services.thread_labels_patch(
            agent=self.agent(request), thread_id=thread_id, add=data["add"], remove=data["remove"]
        )
        return Response(thread_item(thread))


class ThreadReadView(AgentAPIView):
    @extend_schema(
        operation_id="thread_read_patch",
        summary="Mark every received message of a thread read or unread",
        request=ReadPatchSerializer,
        responses={200: ThreadItemSchema, **error_responses(400, 404, 413, 415)},
    )
    def patch(self, request: Request, thread_id: str) -> Response:
        data = input_validate(ReadPatchSerializer, request.data)
        thread = services.thread_read_set(agent=self.agent(request), thread_id=thread_id, is_read=data["is_read"])
        return Response(thread_item(thread))


class ThreadArchiveView(AgentAPIView):
    @extend_schema(
        operation_id="thread_archive_patch",
        summary="Archive or restore every message of a thread",
        request=ArchivePatchSerializer,
        responses={200: ThreadItemSchema, **error_responses(400, 404, 409, 413, 415)},
    )
    def patch(self, request: Request, thread_id: str) -> Response:
        data = input_validate(ArchivePatchSerializer, request.data)
        thread = services.thread_archive_set(agent=self.agent(request), thread_id=thread_id, archived=data["archived"])
        return Response(thread_item(thread))


urlpatterns = [
    path("threads", ThreadListView.as_view(), name="threads"),
    path("threads/<str:thread_id>/labels", ThreadLabelsView.as_view(), name="thread-labels"),
    path("threads/<str:thread_id>/read", ThreadReadView.as_view(), name="thread-read"),
    path("threads/<str:thread_id>/archive", ThreadArchiveView.as_view(), name="thread-archive"),
]
