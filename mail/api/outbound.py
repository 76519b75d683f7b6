"""Governed sending: an agent cancels its own scheduled or held message; an operator
approves or rejects its account's messages awaiting approval and manages suppressions.

Another account's message or suppression is a 404, exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from assmbl.errors import NotFound
from assmbl.inputs import InputSerializer, StrictCharField, input_validate
from assmbl.openapi import error_responses
from assmbl.query import cursor_encode, query_params
from directory.api.agents import OperatorAPIView
from directory.auth import token_user
from mail.api.common import AgentAPIView
from mail.api.schema import InboxItemPageSchema, SendAcceptedSchema
from mail.idempotency import send_response
from mail.models import Message, Suppression
from mail.outbound import message_approve, message_cancel, message_reject, suppression_delete
from mail.pagination import page_after
from mail.serializers import PageQuerySerializer, rfc3339

_STATUS = OpenApiResponse(response=SendAcceptedSchema, description="The message and its new Status")


class CancelView(AgentAPIView):
    @extend_schema(
        operation_id="message_cancel",
        summary="Cancel a scheduled, held or not yet handed over message",
        request=None,
        responses={200: _STATUS, **error_responses(404, 409)},
    )
    def post(self, request: Request, message_id: str) -> Response:
        message = (
            Message.objects.for_agent(self.agent(request))
            .outbound()
            .select_related("agent")
            .filter(pk=message_id)
            .first()
        )
        if message is None:
            raise NotFound("No such outbound message.", code="message_not_found")
        return Response(send_response(message_cancel(message=message)))


class DecisionInput(InputSerializer):
    """Why (optional): kept with the decision and sent in its event."""

    note = StrictCharField(required=False, allow_blank=True, max_length=2000)

    class Meta:
        ref_name = "ApprovalDecisionRequest"


class _ApprovalView(OperatorAPIView):
    decide: Any = None

    def message_or_404(self, request: Request, message_id: str) -> Message:
        account = token_user(request).account
        message = (
            Message.objects.outbound().select_related("agent").filter(pk=message_id, agent__account=account).first()
        )
        if message is None:
            raise NotFound("No such outbound message.", code="message_not_found")
        return message

    def post(self, request: Request, message_id: str) -> Response:
        message = self.message_or_404(request, message_id)
        data = input_validate(DecisionInput, request.data if request.data else {})
        user = token_user(request)
        decided = type(self).decide(
            message=message, decided_by=f"operator:{user.token.prefix}", note=data.get("note", "")
        )
        return Response(send_response(decided))


class ApproveView(_ApprovalView):
    decide = staticmethod(message_approve)

    @extend_schema(
        operation_id="approval_approve",
        summary="Approve a message awaiting approval: it goes out (at its send_at)",
        request=DecisionInput,
        responses={200: _STATUS, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, message_id: str) -> Response:
        return super().post(request, message_id)


class RejectView(_ApprovalView):
    decide = staticmethod(message_reject)

    @extend_schema(
        operation_id="approval_reject",
        summary="Reject a message awaiting approval: it is never sent",
        request=DecisionInput,
        responses={200: _STATUS, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, message_id: str) -> Response:
        return super().post(request, message_id)


class ApprovalsView(OperatorAPIView):
    @extend_schema(
        operation_id="approvals_list",
        summary="The account's messages awaiting approval, oldest first",
        parameters=[PageQuerySerializer],
        responses={200: InboxItemPageSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, PageQuerySerializer)
        queryset = Message.objects.filter(
            agent__account=token_user(request).account, status=Message.Status.PENDING_APPROVAL
        ).as_items()
        return Response(page_after(queryset, limit=params["limit"], after=params.get("cursor")).body())


class SuppressionSchema(serializers.Serializer[Any]):
    address = serializers.CharField()
    reason = serializers.ChoiceField(choices=Suppression.Reason.choices)
    detail = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class SuppressionPageSchema(serializers.Serializer[Any]):
    items = SuppressionSchema(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()

    class Meta:
        ref_name = "SuppressionPage"


def _suppression_body(row: Suppression) -> dict[str, Any]:
    return {"address": row.address, "reason": row.reason, "detail": row.detail, "created_at": rfc3339(row.created_at)}


class SuppressionsView(OperatorAPIView):
    @extend_schema(
        operation_id="suppressions_list",
        summary="Addresses the account's agents may not send to (hard bounces, complaints)",
        parameters=[PageQuerySerializer],
        responses={200: SuppressionPageSchema, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        params = query_params(request, PageQuerySerializer)
        # Keyset over (created_at, address): the address is unique in the account.
        queryset = Suppression.objects.filter(account=token_user(request).account)
        if "cursor" in params:
            created_at, last_address = params["cursor"]
            queryset = queryset.filter(created_at__gt=created_at) | queryset.filter(
                created_at=created_at, address__gt=last_address
            )
        limit = params["limit"]
        rows = list(queryset.order_by("created_at", "address")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = cursor_encode(rows[-1].created_at, rows[-1].address) if has_more else None
        return Response(
            {"items": [_suppression_body(r) for r in rows], "next_cursor": next_cursor, "has_more": has_more}
        )


class SuppressionView(OperatorAPIView):
    @extend_schema(
        operation_id="suppressions_delete",
        summary="Let the account's agents send to this address again",
        responses={204: OpenApiResponse(description="Removed"), **error_responses(404)},
    )
    def delete(self, request: Request, address: str) -> Response:
        suppression_delete(account=token_user(request).account, address=address)
        return Response(status=204)


urlpatterns = [
    path("messages/<str:message_id>/cancel", CancelView.as_view(), name="message-cancel"),
    path("approvals", ApprovalsView.as_view(), name="approvals"),
    path("approvals/<str:message_id>/approve", ApproveView.as_view(), name="approval-approve"),
    path("approvals/<str:message_id>/reject", RejectView.as_view(), name="approval-reject"),
    path("suppressions", SuppressionsView.as_view(), name="suppressions"),
    path("suppressions/<str:address>", SuppressionView.as_view(), name="suppression"),
]
