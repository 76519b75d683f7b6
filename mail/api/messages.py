"""One message by id: GET, GET /raw, DELETE, and PATCH of labels, read state and archive.

Every lookup goes through ``message_for_agent_or_404``: another agent's message is the
same 404 as an id that never existed.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import FileResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from assmbl.errors import NotFound
from assmbl.inputs import input_validate
from assmbl.openapi import error_responses
from mail import services, storage
from mail.api.common import AgentAPIView, message_for_agent_or_404
from mail.api.schema import InboxItemSchema, MessageDetailSchema
from mail.message_content import message_content_get
from mail.models import Message
from mail.serializers import (
    ArchivePatchSerializer,
    LabelsPatchSerializer,
    ReadPatchSerializer,
    message_item,
)


def _raw_text(message: Message) -> str:
    if not message.storage_key:
        return ""
    try:
        raw = storage.raw_read(message.storage_key, archived=message.archived)
    except FileNotFoundError:
        return ""
    # Mail is bytes in many charsets; JSON needs text. Invalid UTF-8 is replaced, and the
    # exact bytes are always at /raw.
    return raw.decode("utf-8", errors="replace")


class MessageView(AgentAPIView):
    @extend_schema(
        operation_id="message_get",
        summary="A message with its decoded content and its raw MIME",
        responses={200: MessageDetailSchema, **error_responses(404)},
    )
    def get(self, request: Request, message_id: str) -> Response:
        # One query: the item's relations and the stored content row with the message (on a
        # loaded machine each round trip to the database costs more than the rest of the read).
        message = (
            Message.objects.for_agent(self.agent(request))
            .with_item_relations()
            .select_related("content")
            .filter(pk=message_id)
            .first()
        )
        if message is None:
            raise NotFound("No such message.", code="message_not_found")
        # First: computing the content may set the message's BodyPreview (from ExtractedText).
        content = message_content_get(message=message).as_api()
        return Response({**message_item(message), **content, "raw_mime": _raw_text(message)})

    @extend_schema(
        operation_id="message_delete",
        summary="Delete a message and its raw MIME",
        responses={204: OpenApiResponse(description="Deleted"), **error_responses(404)},
    )
    def delete(self, request: Request, message_id: str) -> Response:
        message = message_for_agent_or_404(self.agent(request), message_id)
        services.message_delete(message=message)
        return Response(status=204)


class _AnyAcceptNegotiation(DefaultContentNegotiation):
    """/raw answers ``message/rfc822`` whatever the Accept header says; errors are JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class MessageRawView(AgentAPIView):
    content_negotiation_class = _AnyAcceptNegotiation

    @extend_schema(
        operation_id="message_raw",
        summary="The exact stored bytes of the message",
        responses={
            (200, "message/rfc822"): OpenApiResponse(response=OpenApiTypes.BINARY, description="The raw MIME"),
            **error_responses(404),
        },
    )
    def get(self, request: Request, message_id: str) -> FileResponse:
        message = message_for_agent_or_404(self.agent(request), message_id)
        if not message.storage_key:
            raise NotFound("This message has no stored raw MIME.", code="raw_not_found")
        try:
            fh = storage.raw_open(message.storage_key, archived=message.archived)
        except FileNotFoundError:
            raise NotFound("This message has no stored raw MIME.", code="raw_not_found") from None
        # Streamed: a 40 MB message is never held in memory.
        response = FileResponse(fh, content_type="message/rfc822")
        response["Content-Disposition"] = f'attachment; filename="{message.id}.eml"'
        return response


class MessageLabelsView(AgentAPIView):
    @extend_schema(
        operation_id="message_labels_patch",
        summary="Add and remove labels atomically",
        request=LabelsPatchSerializer,
        examples=[
            OpenApiExample("Triage", value={"add": ["needs-review", "urgent"], "remove": ["inbox"]}, request_only=True)
        ],
        responses={200: InboxItemSchema, **error_responses(400, 404, 413, 415)},
    )
    def patch(self, request: Request, message_id: str) -> Response:
        message = message_for_agent_or_404(self.agent(request), message_id)
        data = input_validate(LabelsPatchSerializer, request.data)
        message = services.message_labels_patch(message=message, add=data["add"], remove=data["remove"])
        return Response(message_item(message))


class MessageReadView(AgentAPIView):
    @extend_schema(
        operation_id="message_read_patch",
        summary="Mark read or unread",
        request=ReadPatchSerializer,
        responses={200: InboxItemSchema, **error_responses(400, 404, 413, 415)},
    )
    def patch(self, request: Request, message_id: str) -> Response:
        message = message_for_agent_or_404(self.agent(request), message_id)
        data = input_validate(ReadPatchSerializer, request.data)
        return Response(message_item(services.message_read_set(message=message, is_read=data["is_read"])))


class MessageArchiveView(AgentAPIView):
    @extend_schema(
        operation_id="message_archive_patch",
        summary="Archive or restore",
        request=ArchivePatchSerializer,
        responses={200: InboxItemSchema, **error_responses(400, 404, 409, 413, 415)},
    )
    def patch(self, request: Request, message_id: str) -> Response:
        message = message_for_agent_or_404(self.agent(request), message_id)
        data = input_validate(ArchivePatchSerializer, request.data)
        return Response(message_item(services.message_archive_set(message=message, archived=data["archived"])))


urlpatterns = [
    path("messages/<str:message_id>", MessageView.as_view(), name="message"),
    path("messages/<str:message_id>/raw", MessageRawView.as_view(), name="message-raw"),
    path("messages/<str:message_id>/labels", MessageLabelsView.as_view(), name="message-labels"),
    path("messages/<str:message_id>/read", MessageReadView.as_view(), name="message-read"),
    path("messages/<str:message_id>/archive", MessageArchiveView.as_view(), name="message-archive"),
]
