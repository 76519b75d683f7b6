from __future__ import annotations

from django.contrib import admin

from mail.models import Attachment, InboundDelivery, Message, SendRequest


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "agent", "direction", "disposition", "sender", "subject", "received_at", "is_read", "archived"]
    list_filter = ["direction", "disposition", "is_read", "archived", "sender_verified", "parse_status"]
    search_fields = ["id", "subject", "sender", "from_name", "internet_message_id"]
    list_select_related = ["agent"]
    show_full_result_count = False
    date_hierarchy = "received_at"
    raw_id_fields = ["delivery"]


@admin.register(InboundDelivery)
class InboundDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "status", "envelope_from", "size", "received_at", "processed_at"]
    list_filter = ["source", "status"]
    search_fields = ["id", "external_id", "envelope_from"]
    show_full_result_count = False


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ["id", "agent", "kind", "state", "filename", "content_type", "size"]
    list_filter = ["kind", "state"]
    raw_id_fields = ["message"]


@admin.register(SendRequest)
class SendRequestAdmin(admin.ModelAdmin):
    list_display = ["agent", "key", "state", "response_status", "created_at", "expires_at"]
    list_filter = ["state"]
