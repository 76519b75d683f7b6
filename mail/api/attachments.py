"""Attachments API: claim-check uploads (create, upload, state) and downloads of the parts
of received mail. Rules live in mail.attachments; these views translate HTTP."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assmbl.inputs import input_validate
from assmbl.openapi import error_responses
from mail.api.common import AgentAPIView, message_for_agent_or_404
from mail.api.schema import AttachmentTextSchema, DownloadUrlSchema, UploadItemSchema, UploadTicketSchema
from mail.attachments import (
    UploadTicket,
    attachment_create,
    attachment_download_url,
    attachment_for_agent_or_404,
    attachment_open,
    attachment_refresh,
    attachment_upload_receive,
    download_filename,
    inbound_attachment_or_404,
)
from mail.message_content import attachment_text_get
from mail.models import Attachment
from mail.rawstore import rawstore
from mail.serializers import AttachmentCreateInput, rfc3339


def upload_item(attachment: Attachment) -> dict[str, Any]:
    return {
        "AttachmentID": attachment.id,
        "Filename": attachment.filename,
        "ContentType": attachment.content_type,
        "Size": attachment.size,
        "Sha256": attachment.sha256 or None,
        "State": attachment.state,
        "ExpiresAt": rfc3339(attachment.expires_at),
        "MessageID": attachment.message_id,
    }


def ticket_item(ticket: UploadTicket) -> dict[str, Any]:
    body: dict[str, Any] = {
        "AttachmentID": ticket.attachment.id,
        "upload_url": ticket.url,
        "upload_method": ticket.method,
        "expires_at": rfc3339(ticket.attachment.expires_at),
    }
    if ticket.fields is not None:
        body["upload_fields"] = ticket.fields
    return body


class AttachmentsView(AgentAPIView):
    @extend_schema(
        operation_id="attachment_create",
        summary="Reserve an upload: the URL the bytes go to",
        request=AttachmentCreateInput,
        responses={201: UploadTicketSchema, **error_responses(400, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        data = input_validate(AttachmentCreateInput, request.data)
        ticket = attachment_create(
            agent=self.agent(request),
            filename=data["filename"],
            content_type=data["content_type"],
            size=data["size"],
            sha256=data.get("sha256"),
        )
        return Response(ticket_item(ticket), status=status.HTTP_201_CREATED)


class AttachmentView(AgentAPIView):
    @extend_schema(
        operation_id="attachment_get",
        summary="The state of an upload",
        responses={200: UploadItemSchema, **error_responses(404)},
    )
    def get(self, request: Request, attachment_id: str) -> Response:
        attachment = attachment_for_agent_or_404(agent=self.agent(request), attachment_id=attachment_id)
        return Response(upload_item(attachment_refresh(attachment=attachment)))


class AttachmentUploadView(APIView):
    """Embedded mode's upload target. The signed URL is the credential (a client hands it
    to curl or a browser with no token). The body is read from the raw stream in chunks;
    ``request.data`` is never touched, so no DRF parser buffers it."""

    streams_request_body = True  # exempt from the JSON body cap (assmbl.middleware)
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        operation_id="attachment_upload",
        summary="Upload the bytes (embedded storage); the signed URL is the credential",
        request={"application/octet-stream": OpenApiTypes.BINARY, "*/*": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter("expires", OpenApiTypes.STR, required=True, description="from upload_url"),
            OpenApiParameter("signature", OpenApiTypes.STR, required=True, description="from upload_url"),
        ],
        auth=[],
        responses={
            200: UploadItemSchema,
            # No token here: the signature is the credential, so never a 401.
            **{code: r for code, r in error_responses(400, 403, 409, 411, 413).items() if code != 401},
        },
    )
    def put(self, request: Request, attachment_id: str) -> Response:
        raw = request._request
        length = raw.META.get("CONTENT_LENGTH")
        attachment = attachment_upload_receive(
            attachment_id=attachment_id,
            expires=request.query_params.get("expires", ""),
            signature=request.query_params.get("signature", ""),
            stream=raw,  # type: ignore[arg-type]  # an HttpRequest is read like a binary file (read())
            content_length=int(length) if length and length.isdigit() else None,
            content_type=raw.META.get("CONTENT_TYPE", ""),
        )
        return Response(upload_item(attachment))


class MessageAttachmentView(AgentAPIView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # A download answers bytes whatever the client accepts (curl -H 'Accept: */*',
        # a browser, 'application/octet-stream'); only errors are rendered as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="message_attachment_download",
        summary="Download an attachment of a received message",
        description="Embedded storage streams the bytes with the attachment's content type. "
        "In S3 mode the answer is a 302 to a presigned URL, or, with Accept: application/json, the URL as JSON.",
        responses={
            (200, "*/*"): OpenApiResponse(response=OpenApiTypes.BINARY, description="The attachment bytes"),
            (200, "application/json"): OpenApiResponse(response=DownloadUrlSchema, description="S3 mode, JSON asked"),
            302: OpenApiResponse(description="S3 mode: redirect to a presigned download URL"),
            **error_responses(404),
        },
    )
    def get(self, request: Request, message_id: str, attachment_id: str) -> HttpResponseBase | Response:
        message = message_for_agent_or_404(self.agent(request), message_id)
        attachment = inbound_attachment_or_404(message=message, attachment_id=attachment_id)
        if rawstore().direct_downloads and attachment.storage_key:
            url, expires_at = attachment_download_url(attachment=attachment)
            if "application/json" in request.META.get("HTTP_ACCEPT", ""):
                return Response({"url": url, "expires_at": rfc3339(expires_at)})
            redirect = HttpResponseRedirect(url)
            redirect["X-Url-Expires-At"] = rfc3339(expires_at) or ""
            redirect["Cache-Control"] = "no-store"
            return redirect
        response = FileResponse(
            attachment_open(attachment),
            as_attachment=True,
            filename=download_filename(attachment),
            content_type=attachment.content_type or "application/octet-stream",
        )
        response["X-Content-Type-Options"] = "nosniff"
        # Opened directly in a browser, an HTML or SVG attachment must not run as our origin.
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, no-store"
        return response


class MessageAttachmentTextView(AgentAPIView):
    @extend_schema(
        operation_id="message_attachment_text",
        summary="An attachment of a message as text (PDF, DOCX, XLSX, PPTX, HTML, CSV, text)",
        description="Converted once per distinct file of the account, in the worker (usually right "
        "after the mail arrives) under ATTACHMENT_TEXT_TIME_LIMIT, and kept; a read waits up to "
        "ATTACHMENT_TEXT_WAIT_SECONDS for a conversion under way. 415 for a type without text, or a "
        "file that could not be converted (details.reason: unreadable, time_limit, failed); 413 over "
        "ATTACHMENT_TEXT_MAX_BYTES; 503 attachment_text_pending with Retry-After while still converting.",
        responses={200: AttachmentTextSchema, **error_responses(404, 413, 415)},
    )
    def get(self, request: Request, message_id: str, attachment_id: str) -> Response:
        message = message_for_agent_or_404(self.agent(request), message_id)
        attachment = inbound_attachment_or_404(message=message, attachment_id=attachment_id)
        text, truncated = attachment_text_get(attachment=attachment)
        return Response(
            {
                "AttachmentID": attachment.id,
                "ContentType": attachment.content_type,
                "Text": text,
                "Truncated": truncated,
            }
        )


urlpatterns: list[URLPattern] = [
    path("attachments", AttachmentsView.as_view(), name="attachments"),
    path("attachments/<str:attachment_id>", AttachmentView.as_view(), name="attachment"),
    path("attachments/<str:attachment_id>/upload", AttachmentUploadView.as_view(), name="attachment-upload"),
    path(
        "messages/<str:message_id>/attachments/<str:attachment_id>",
        MessageAttachmentView.as_view(),
        name="message-attachment",
    ),
    path(
        "messages/<str:message_id>/attachments/<str:attachment_id>/text",
        MessageAttachmentTextView.as_view(),
        name="message-attachment-text",
    ),
]
