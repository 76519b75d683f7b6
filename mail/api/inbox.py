"""GET /v1/inbox and GET /v1/inbox/unread-count."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from assmbl.openapi import error_responses
from assmbl.query import query_params
from directory.models import Agent
from mail.api.common import AgentAPIView
from mail.api.schema import InboxPageSchema, UnreadCountSchema
from mail.models import Message, MessageUnread
from mail.pagination import page_after
from mail.querysets import MessageQuerySet
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
        items = inbox_listing(
            agent=self.agent(request),
            label=params.get("label"),
            is_read=params.get("is_read"),
            include_archived=params["include_archived"],
            verified_only=params["verified_only"],
            q=params.get("q"),
        )
        page = page_after(items, limit=params["limit"], after=params.get("cursor"))
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
        unread_count = inbox_unread_count(
            agent=self.agent(request),
            label=params.get("label"),
            is_read=params.get("is_read"),
            verified_only=params["verified_only"],
        )
        return Response({"unread_count": unread_count})


def inbox_listing(
    *,
    agent: Agent,
    label: str | None = None,
    is_read: bool | None = None,
    include_archived: bool = False,
    verified_only: bool = False,
    q: str | None = None,
) -> MessageQuerySet[Message]:
    """The items GET /v1/inbox pages through (mail.pagination.page_after sorts, seeks and
    cuts them). bench/api.py times its rows through this too, so that it measures the
    query the API runs."""
    messages = Message.objects.for_agent(agent).inbox_filtered(
        label=label, is_read=is_read, include_archived=include_archived, verified_only=verified_only
    )
    if q is not None:
        messages = messages.search(q)
    return messages.as_items()


def inbox_unread(
    *, agent: Agent, label: str | None = None, is_read: bool | None = None, verified_only: bool = False
) -> MessageQuerySet[Message]:
    """What GET /v1/inbox/unread-count counts: archived mail never."""
    return (
        Message.objects.for_agent(agent)
        .inbox_filtered(
            label=label,
            is_read=False if is_read is None else is_read,
            include_archived=False,
            verified_only=verified_only,
        )
        .unread()
    )


def inbox_unread_count(
    *, agent: Agent, label: str | None = None, is_read: bool | None = None, verified_only: bool = False
) -> int:
    """GET /v1/inbox/unread-count. Without a filter that needs the messages themselves,
    a count of the mailbox's rows of MessageUnread (which holds exactly inbox_unread()'s
    messages): an index-only count of mail_unread_agent_received, never a probe of
    mail_message. bench/api.py times it through this function."""
    if label is None and is_read is not True and not verified_only:
        return MessageUnread.objects.filter(agent=agent).count()
    return inbox_unread(agent=agent, label=label, is_read=is_read, verified_only=verified_only).count()


urlpatterns = [
    path("inbox", InboxView.as_view(), name="inbox"),
    path("inbox/unread-count", UnreadCountView.as_view(), name="inbox-unread-count"),
]
