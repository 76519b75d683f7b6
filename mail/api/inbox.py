"""GET /v1/inbox and GET /v1/inbox/unread-count."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from assmbl.openapi import error_responses
from assmbl.query import query_params
from mail.api.common import AgentAPIView
from mail.api.schema import InboxPageSchema, UnreadCountSchema
from mail.models import Message
from mail.pagination import page_after
from mail.serializers import (
    InboxQuerySerializer,
    UnreadCountQuerySerializer,
)


class InboxView(AgentAPIView):
    @extend_schema(
        operation_id="inbox_list",
        summary="List the inbox, oldest first",
        parameters=[InboxQuerySerializer],
        responses={200: InboxPageSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, InboxQuerySerializer)
        qs = Message.objects.for_agent(self.agent(request)).inbox_filtered(
            label=params.get("label"),
            is_read=params.get("is_read"),
            include_archived=params["include_archived"],
            verified_only=params["verified_only"],
        )
        if "q" in params:
            qs = qs.search(params["q"])
        page = page_after(qs.as_items(), limit=params["limit"], after=params.get("cursor"))
        return Response(page.body())


class UnreadCountView(AgentAPIView):
    @extend_schema(
        operation_id="inbox_unread_count",
        summary="Count unread messages (archived never counted)",
        parameters=[UnreadCountQuerySerializer],
        responses={200: UnreadCountSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, UnreadCountQuerySerializer)
        qs = (
            Message.objects.for_agent(self.agent(request))
            .inbox_filtered(
                label=params.get("label"),
                is_read=params.get("is_read"),
                include_archived=False,
                verified_only=params["verified_only"],
            )
            .unread()
        )
        return Response({"unread_count": qs.count()})


urlpatterns = [
    path("inbox", InboxView.as_view(), name="inbox"),
    path("inbox/unread-count", UnreadCountView.as_view(), name="inbox-unread-count"),
]
