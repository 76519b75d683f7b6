"""Documentation-only serializers: the inbox item as ``mail.serializers.message_item``
builds it, so the OpenAPI schema says exactly what the API returns."""

from __future__ import annotations

from rest_framework import serializers


class AttachmentItemSchema(serializers.Serializer):
    AttachmentID = serializers.CharField()
    Filename = serializers.CharField(allow_blank=True)
    ContentType = serializers.CharField()
    Size = serializers.IntegerField(min_value=0)


class AuthenticationSchema(serializers.Serializer):
    spf = serializers.JSONField(allow_null=True)
    dkim = serializers.JSONField(allow_null=True)
    dmarc = serializers.JSONField(allow_null=True)
    aligned = serializers.JSONField(allow_null=True)


class InboxItemSchema(serializers.Serializer):
    MessageID = serializers.CharField()
    AgentID = serializers.CharField()
    Direction = serializers.ChoiceField(choices=["inbound", "outbound"])
    Status = serializers.CharField()
    From = serializers.CharField(allow_blank=True)
    Sender = serializers.CharField(allow_blank=True)
    To = serializers.ListField(child=serializers.CharField())
    Cc = serializers.ListField(child=serializers.CharField())
    Subject = serializers.CharField(allow_blank=True)
    BodyPreview = serializers.CharField(allow_blank=True)
    ReceivedAt = serializers.DateTimeField()
    SenderVerified = serializers.BooleanField()
    Authentication = AuthenticationSchema()
    Labels = serializers.ListField(child=serializers.CharField())
    IsRead = serializers.BooleanField()
    Archived = serializers.BooleanField()
    Disposition = serializers.CharField()
    ThreadID = serializers.CharField(allow_blank=True)
    InternetMessageID = serializers.CharField(allow_blank=True)
    Attachments = AttachmentItemSchema(many=True)
    Size = serializers.IntegerField(min_value=0)

    class Meta:
        ref_name = "InboxItem"


class MessageDetailSchema(InboxItemSchema):
    raw_mime = serializers.CharField(
        allow_blank=True, help_text="The stored raw MIME as text (UTF-8, invalid bytes replaced); exact bytes at /raw."
    )

    class Meta:
        ref_name = "MessageDetail"


class InboxPageSchema(serializers.Serializer):
    items = InboxItemSchema(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()

    class Meta:
        ref_name = "InboxPage"


class UnreadCountSchema(serializers.Serializer):
    unread_count = serializers.IntegerField(min_value=0)

    class Meta:
        ref_name = "UnreadCount"
