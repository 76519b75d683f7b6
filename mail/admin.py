"""The staff console for mail: messages, the moderation queue, deliveries, attachments and
archival jobs. Every action calls a service function (the same ones the API uses) and is
written to the admin log with the staff member who did it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html

from assmbl.admin import RecordAdmin
from assmbl.domain import DomainError, InvalidQuery
from directory.models import Sender, SenderRule
from mail import moderation, services
from mail.archival import archive_job_start
from mail.attachments import attachment_open
from mail.message_content import message_content_get
from mail.models import (
    ArchiveJob,
    Attachment,
    AttachmentText,
    InboundDelivery,
    Message,
    MessageLabel,
    ModerationItem,
    OutboundApproval,
    SendRequest,
    Suppression,
)
from mail.outbound import message_approve, message_reject, suppression_add, suppression_delete
from mail.preview import message_headers, preview_csp
from mail.querysets import MessageQuerySet
from mail.smtp_tls import received_transport
from mail.storage import raw_open
from mail.trust import sender_entry_create, sender_verify

COUNT_CAP = 10_000


class BoundedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows: a COUNT(*) over a million-row mailbox on every
    page load is what makes admin lists slow, and nobody pages past page 100 anyway."""

    @cached_property
    def count(self) -> int:
        # The stubs type object_list as any sequence; the admin's lists page querysets.
        rows = cast("QuerySet[Any]", self.object_list)
        return rows.order_by()[: COUNT_CAP + 1].count()


class LabelActionForm(ActionForm):
    label = forms.CharField(required=False, max_length=64, help_text="for the label actions")


def _log(request: HttpRequest, obj: Any, message: str) -> None:
    # The stubs allow an anonymous user; the admin site lets in logged-in staff only.
    LogEntry.objects.log_actions(
        user_id=cast(int, request.user.pk),
        queryset=[obj],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )


def _mail(queryset: QuerySet[Message]) -> MessageQuerySet[Message]:
    """A changelist's messages with the mailbox's reads (search, labels, the queue): every
    queryset of these admins starts from ``Message.objects``, a ``MessageQuerySet``, which
    the stubs' ``ModelAdmin`` and ``ListFilter`` signatures call a plain ``QuerySet``."""
    return cast("MessageQuerySet[Message]", queryset)


def _each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Message],
    verb: str,
    fn: Callable[[Message], object],
) -> None:
    done = 0
    for message in queryset.select_related("agent"):
        try:
            if fn(message) is not False:
                _log(request, message, verb)
                done += 1
        except Exception as exc:  # a refused state change on one message must not stop the rest
            modeladmin.message_user(request, f"{message.id}: {exc}", messages.WARNING)
    modeladmin.message_user(request, f"{verb}: {done} message(s).", messages.SUCCESS)


@admin.action(description="Release to the inbox", permissions=["change"])
def release(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    _each(modeladmin, request, queryset, "Released to the inbox", lambda m: moderation.message_release(message=m))


@admin.action(description="Trust the sender (for this agent)", permissions=["change"])
def trust_sender(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    _each(modeladmin, request, queryset, "Trusted the sender", lambda m: moderation.message_sender_trust(message=m))


@admin.action(description="Block the sender (for this agent)", permissions=["change"])
def block_sender(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    _each(modeladmin, request, queryset, "Blocked the sender", lambda m: moderation.message_sender_block(message=m))


@admin.action(description="Mark read", permissions=["change"])
def mark_read(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    _each(modeladmin, request, queryset, "Marked read", lambda m: services.message_read_set(message=m, is_read=True))


@admin.action(description="Mark unread", permissions=["change"])
def mark_unread(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    _each(modeladmin, request, queryset, "Marked unread", lambda m: services.message_read_set(message=m, is_read=False))


@admin.action(description="Archive", permissions=["change"])
def archive(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    _each(modeladmin, request, queryset.filter(archived=False), "Archived", _archive_setter(True))


@admin.action(description="Unarchive", permissions=["change"])
def unarchive(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    _each(modeladmin, request, queryset.filter(archived=True), "Unarchived", _archive_setter(False))


def _archive_setter(archived: bool) -> Callable[[Message], Message]:
    return lambda m: services.message_archive_set(message=m, archived=archived)


@admin.action(description="Add the label given below", permissions=["change"])
def add_label(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    label = request.POST.get("label", "")
    _each(
        modeladmin,
        request,
        queryset,
        f"Labelled {label!r}",
        lambda m: services.message_labels_patch(message=m, add=[label], remove=[]),
    )


@admin.action(description="Remove the label given below", permissions=["change"])
def remove_label(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    label = request.POST.get("label", "")
    _each(
        modeladmin,
        request,
        queryset,
        f"Unlabelled {label!r}",
        lambda m: services.message_labels_patch(message=m, add=[], remove=[label]),
    )


@admin.action(description="Delete (message and raw MIME)", permissions=["delete"])
def delete_messages(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Message]) -> None:
    done = 0
    for message in list(queryset):
        _log(request, message, "Deleted")
        services.message_delete(message=message)
        done += 1
    modeladmin.message_user(request, f"Deleted {done} message(s).", messages.SUCCESS)


class LabelFilter(admin.SimpleListFilter):
    title = "label"
    parameter_name = "label"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = MessageLabel.objects.values_list("name", flat=True).distinct().order_by("name")[:50]
        return [(n, n) for n in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        label = self.value()
        return _mail(queryset).with_label(label) if label else queryset


class AttachmentInline(admin.TabularInline):
    model = Attachment
    readonly_fields = ("download", "filename", "content_type", "size", "disposition", "content_id")
    fields = readonly_fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="")
    def download(self, obj: Attachment) -> str:
        url = reverse("admin:mail_message_attachment", args=[obj.message_id, obj.id])
        return format_html('<a href="{}">download</a>', url)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "agent",
        "direction",
        "disposition",
        "status",
        "sender",
        "subject",
        "received_at",
        "is_read",
        "archived",
        "sender_verified",
    ]
    # status: staff find the outbound mail that did not go out (failed, in doubt included;
    # rejected; canceled) and what still waits (scheduled, pending_approval).
    list_filter = [
        "direction",
        "disposition",
        "status",
        "sender_verified",
        LabelFilter,
        "is_read",
        "archived",
        "parse_status",
        "received_at",
        "agent",
    ]
    list_select_related = ["agent"]
    search_fields = ["subject"]  # shows the search box; get_search_results searches as the API's q
    search_help_text = (
        "As the API's q: words match Subject, preview, sender or From name; operators such as "
        "from:, to:, subject:, body:, label:, is:unread, has:attachment, before:2026-01-31, -negated."
    )
    show_full_result_count = False
    paginator = BoundedCountPaginator
    list_per_page = 50
    # No date_hierarchy: its year/month links cost a DISTINCT scan of the whole table on
    # every page load; the received_at filter (today, 7 days, month, year) is free.
    ordering = ["-received_at", "-id"]
    action_form = LabelActionForm
    actions = [
        release,
        trust_sender,
        block_sender,
        mark_read,
        mark_unread,
        archive,
        unarchive,
        add_label,
        remove_label,
        delete_messages,
    ]
    inlines = [AttachmentInline]
    change_form_template = "admin/mail/message/change_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "agent",
                    "direction",
                    "disposition",
                    "status",
                    "subject",
                    "from_header",
                    "sender",
                    "to",
                    "cc",
                    "received_at",
                ]
            },
        ),
        (
            "State",
            {
                "fields": [
                    "is_read",
                    "archived",
                    "sender_verified",
                    "labels_list",
                    "thread_link",
                    "parse_status",
                    "quarantine_reason",
                ]
            },
        ),
        ("Authentication", {"fields": ["authentication"]}),
        (
            "Storage",
            {
                "classes": ["collapse"],
                "fields": [
                    "size",
                    "sha256",
                    "storage_key",
                    "internet_message_id",
                    "in_reply_to",
                    "references",
                    "delivery",
                    "provider_message_id",
                    "status_detail",
                ],
            },
        ),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Staff change mail only through the actions (services), never by editing fields.
        return flatten_fieldsets(self.fieldsets or ())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting goes through the action, which also removes the raw object.
        return False if obj is not None else super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        if not request.user.has_perm("mail.delete_message"):
            actions.pop("delete_messages", None)
        return actions

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.startswith("msg_"):
            return queryset.filter(pk=term), False
        try:
            return _mail(queryset).search(term[:256]), False
        except InvalidQuery as exc:
            messages.error(request, exc.message)
            return queryset.none(), False

    @admin.display(description="id", ordering="id")
    def short_id(self, obj: Message) -> str:
        return obj.id[:14] + "…"

    @admin.display(description="labels")
    def labels_list(self, obj: Message) -> str:
        return ", ".join(obj.label_names) or "—"

    @admin.display(description="thread")
    def thread_link(self, obj: Message) -> str:
        if not obj.thread_id:
            return "—"
        url = reverse("admin:mail_message_changelist") + f"?thread_id={obj.thread_id}&agent__id__exact={obj.agent_id}"
        count = Message.objects.for_agent(obj.agent).in_thread(obj.thread_id).count()
        return format_html('<a href="{}">{} message(s) in {}</a>', url, count, obj.thread_id)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup == "thread_id" or super().lookup_allowed(lookup, value, request)

    def get_urls(self) -> list[Any]:
        if self.model is not Message:
            return super().get_urls()  # the queue reuses the message views' URLs
        view = self.admin_site.admin_view
        return [
            path("<str:message_id>/raw/", view(self.raw_view), name="mail_message_raw"),
            path("<str:message_id>/html/", view(self.html_view), name="mail_message_html"),
            path(
                "<str:message_id>/attachments/<str:attachment_id>/",
                view(self.attachment_view),
                name="mail_message_attachment",
            ),
            *super().get_urls(),
        ]

    def _message(self, request: HttpRequest, message_id: str) -> Message:
        if not self.has_view_permission(request):
            raise Http404
        return get_object_or_404(Message, pk=message_id)

    def raw_view(self, request: HttpRequest, message_id: str) -> FileResponse:
        message = self._message(request, message_id)
        response = FileResponse(raw_open(message.storage_key, archived=message.archived), content_type="message/rfc822")
        response["Content-Disposition"] = f'attachment; filename="{message.id}.eml"'
        return response

    def html_view(self, request: HttpRequest, message_id: str) -> HttpResponse:
        message = self._message(request, message_id)
        html = message_content_get(message=message).html
        response = HttpResponse(html or "<p>(no HTML part)</p>", content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = preview_csp(allow_remote_images=request.GET.get("remote") == "1")
        response["X-Content-Type-Options"] = "nosniff"
        response["Referrer-Policy"] = "no-referrer"
        response["X-Frame-Options"] = "SAMEORIGIN"
        return response

    def attachment_view(self, request: HttpRequest, message_id: str, attachment_id: str) -> FileResponse:
        message = self._message(request, message_id)
        attachment = get_object_or_404(Attachment, pk=attachment_id, message=message)
        response = FileResponse(attachment_open(attachment), content_type="application/octet-stream")
        response["Content-Disposition"] = "attachment"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Admin URLs carry quoted primary keys ("_" becomes "_5F").
        message = self.get_object(request, unquote(object_id))
        extra_context = dict(extra_context or {})
        if message is not None:
            try:
                extra_context["headers"] = message_headers(message)
                extra_context["content"] = message_content_get(message=message)
            except (FileNotFoundError, OSError):
                extra_context["preview_error"] = "The raw MIME object is missing from storage."
            extra_context["allow_remote"] = request.GET.get("remote") == "1"
        # Every field is read-only; changes go through the actions, so no Save buttons.
        extra_context.update(
            show_save=False, show_save_and_continue=False, show_save_and_add_another=False, show_delete=False
        )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(ModerationItem)
class ModerationQueueAdmin(MessageAdmin):
    """Held, quarantined, blocked and unverified inbound mail, oldest first."""

    # Narrow columns that wrap, so the table fits beside the two sidebars at 1,400 px: a
    # moderator must see why a message is held without scrolling sideways.
    list_display = ["message", "agent_name", "state", "received", "verified", "reason"]
    list_display_links = ["message"]
    list_filter = ["disposition", "sender_verified", "agent", "received_at"]
    ordering = ["received_at", "id"]
    change_list_template = "admin/mail/moderationitem/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return _mail(super().get_queryset(request)).in_moderation_queue()

    @admin.display(description="message", ordering="subject")
    def message(self, obj: Message) -> str:
        return format_html("{}<small>{}</small>", obj.subject or "(no subject)", obj.sender or "(no sender)")

    @admin.display(description="agent", ordering="agent__agent_id")
    def agent_name(self, obj: Message) -> str:
        return obj.agent.agent_id

    @admin.display(description="disposition", ordering="disposition")
    def state(self, obj: Message) -> str:
        # The short value: the choice labels ("Held for moderation (policy)") are for the filter.
        return obj.disposition

    @admin.display(description="received", ordering="received_at")
    def received(self, obj: Message) -> str:
        at = timezone.localtime(obj.received_at)
        return date_format(at, "M j, H:i" if at.year == timezone.localtime().year else "M j Y, H:i")

    @admin.display(description="verified", boolean=True, ordering="sender_verified")
    def verified(self, obj: Message) -> bool:
        return obj.sender_verified

    @admin.display(description="reason")
    def reason(self, obj: Message) -> str:
        # One column for every disposition: ingest stores the trust decision's reason (held,
        # blocked) or the parser's (quarantined) in the same field.
        return obj.quarantine_reason or "—"


@admin.register(OutboundApproval)
class OutboundApprovalAdmin(MessageAdmin):
    """Outbound awaiting approval: an agent's mail held by its outbound policy. Staff read
    it (recipients, subject, extracted text, attachments, the agent that asked) and approve
    or reject it with a note, through the same services as the operators' API."""

    list_display = ["message", "agent_name", "recipients", "send_at", "received"]
    list_display_links = ["message"]
    list_filter = ["agent"]
    ordering = ["received_at", "id"]
    actions = []
    change_form_template = "admin/mail/outboundapproval/change_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "agent",
                    "status",
                    "subject",
                    "from_header",
                    "to",
                    "cc",
                    "bcc",
                    "received_at",
                    "send_at",
                ]
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).filter(status=Message.Status.PENDING_APPROVAL)

    @admin.display(description="message", ordering="subject")
    def message(self, obj: Message) -> str:
        return obj.subject or "(no subject)"

    @admin.display(description="asked by", ordering="agent__agent_id")
    def agent_name(self, obj: Message) -> str:
        return obj.agent.agent_id

    @admin.display(description="recipients")
    def recipients(self, obj: Message) -> str:
        return ", ".join([*obj.to, *obj.cc, *obj.bcc])

    @admin.display(description="waiting since", ordering="received_at")
    def received(self, obj: Message) -> str:
        return date_format(timezone.localtime(obj.received_at), "M j, H:i")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST" and ("_approve" in request.POST or "_reject" in request.POST):
            return self._decide(request, object_id)
        extra_context = {**(extra_context or {}), "can_decide": self.has_change_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _decide(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        message = get_object_or_404(Message.objects.select_related("agent"), pk=unquote(object_id))
        decide = message_approve if "_approve" in request.POST else message_reject
        note = str(request.POST.get("note", ""))[:2000]
        try:
            decide(
                message=message, decided_by=f"staff:{request.user.get_username()}", user_id=request.user.pk, note=note
            )
        except DomainError as exc:
            self.message_user(request, f"{message.id}: {exc.message}", messages.ERROR)
        else:
            verb = "Approved" if decide is message_approve else "Rejected"
            _log(request, message, f"{verb.lower()} outbound message" + (f": {note}" if note else ""))
            self.message_user(request, f"{verb} {message.id} ({message.subject or 'no subject'}).", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:mail_outboundapproval_changelist"))


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ["account", "address", "detail"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Addresses an account's agents may not send to: hard bounces and complaints (from
    SES tracking) or added by staff. Removing one lets mail to it go out again."""

    form = SuppressionForm
    list_display = ["address", "account", "reason", "created_at", "message"]
    list_filter = ["reason", "account"]
    search_fields = ["address"]
    list_select_related = ["account"]
    readonly_fields = ["reason", "message", "created_at"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Suppression, form: Any, change: bool) -> None:
        saved = suppression_add(
            account=obj.account, address=obj.address, detail=obj.detail or f"added by {request.user}"
        )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Suppression) -> None:
        suppression_delete(account=obj.account, address=obj.address)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Suppression]) -> None:
        for suppression in queryset.select_related("account"):
            suppression_delete(account=suppression.account, address=suppression.address)


@admin.register(InboundDelivery)
class InboundDeliveryAdmin(RecordAdmin):
    list_display = ["id", "source", "status", "envelope_from", "size", "received_at", "processed_at"]
    list_filter = ["source", "status"]
    search_fields = ["id", "external_id", "envelope_from"]
    readonly_fields = ["transport"]
    show_full_result_count = False
    paginator = BoundedCountPaginator

    @admin.display(description="transport")
    def transport(self, obj: InboundDelivery) -> str:
        """TLS version and cipher, from the Received header the listener wrote."""
        if obj.source != InboundDelivery.Source.SMTP:
            return "—"
        try:
            with raw_open(obj.storage_key) as fh:
                head = fh.read(4096)
        except Exception:
            return "(the stored mail could not be read)"
        return received_transport(head) or "SMTP in clear text"


@admin.register(Attachment)
class AttachmentAdmin(RecordAdmin):
    list_display = ["id", "agent", "kind", "state", "filename", "content_type", "size", "created_at"]
    list_filter = ["kind", "state"]
    raw_id_fields = ["message"]
    list_select_related = ["agent"]
    show_full_result_count = False
    paginator = BoundedCountPaginator


@admin.register(AttachmentText)
class AttachmentTextAdmin(RecordAdmin):
    """Attachments as text, one row per distinct file of an account: staff see here the
    conversions that failed or ran out of time (status, error), which the API answers 415."""

    list_display = ["key", "status", "error", "attempts", "truncated", "updated_at"]
    list_filter = ["status"]
    search_fields = ["key", "sha256"]
    exclude = ["text"]
    show_full_result_count = False
    paginator = BoundedCountPaginator


@admin.register(SendRequest)
class SendRequestAdmin(RecordAdmin):
    list_display = ["agent", "key", "state", "response_status", "created_at", "expires_at"]
    list_filter = ["state"]
    show_full_result_count = False


class ArchiveJobForm(forms.ModelForm):
    confirm = forms.BooleanField(
        required=False, help_text="Required for purge: archived mail past retention is deleted for good."
    )

    class Meta:
        model = ArchiveJob
        fields = ["action", "agent", "older_than_days"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("action") == ArchiveJob.Action.PURGE and not data.get("confirm"):
            raise forms.ValidationError("Tick 'confirm' to purge: deleted mail cannot be restored.")
        return data


@admin.register(ArchiveJob)
class ArchiveJobAdmin(admin.ModelAdmin):
    """Bulk archive / restore / purge by agent and age, run as a background task."""

    form = ArchiveJobForm
    list_display = [
        "id",
        "action",
        "agent",
        "older_than_days",
        "state",
        "progress",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["action", "state"]
    readonly_fields = ["state", "total", "done", "error", "created_by", "created_at", "finished_at"]

    @admin.display(description="progress")
    def progress(self, obj: ArchiveJob) -> str:
        if not obj.total:
            return "—" if obj.state != ArchiveJob.State.DONE else "nothing to do"
        return f"{obj.done}/{obj.total} ({100 * obj.done // obj.total}%)"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The job's row is its task's only record of progress, and the log of who purged what.
        return False

    def save_model(self, request: HttpRequest, obj: ArchiveJob, form: Any, change: bool) -> None:
        job = archive_job_start(
            action=obj.action, agent=obj.agent, older_than_days=obj.older_than_days, created_by=request.user
        )
        obj.pk = job.pk
        obj.refresh_from_db()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "refresh_while_running": ArchiveJob.objects.filter(state__in=["pending", "running"]).exists(),
        }
        return super().changelist_view(request, extra_context)


# --- Senders and sender rules (directory rows; trusting one releases its held mail) ---------


@admin.register(Sender)
class SenderAdmin(admin.ModelAdmin):
    list_display = ["address", "agent", "status", "last_seen_at", "message_count", "verified_at", "challenged_at"]
    list_filter = ["status", "agent__account"]
    search_fields = ["address", "agent__agent_id"]
    list_select_related = ["agent"]
    readonly_fields = ["last_seen_at", "message_count", "verified_at", "challenged_at", "created_at"]
    date_hierarchy = "last_seen_at"
    actions = ["trust_selected"]

    @admin.action(description="Trust selected senders (releases their held mail)")
    def trust_selected(self, request: HttpRequest, queryset: QuerySet[Sender]) -> None:
        for sender in queryset.select_related("agent"):
            sender_verify(agent=sender.agent, address=sender.address, via="directory")


@admin.register(SenderRule)
class SenderRuleAdmin(admin.ModelAdmin):
    """Staff alone make global rules (no account, no agent): every account's mail obeys them."""

    list_display = ["pattern", "action", "scope", "account", "agent", "note", "created_at"]
    list_filter = ["action", ("account", admin.EmptyFieldListFilter), ("agent", admin.EmptyFieldListFilter)]
    search_fields = ["pattern", "agent__agent_id", "account__name", "note"]
    list_select_related = ["agent", "account"]

    @admin.display(description="scope")
    def scope(self, rule: SenderRule) -> str:
        return rule.scope

    def save_model(self, request: HttpRequest, obj: SenderRule, form: Any, change: bool) -> None:
        # Through the service, so a block made here emits sender.blocked like one made by the API.
        if change:
            super().save_model(request, obj, form, change)
            return
        rule = sender_entry_create(
            agent=obj.agent, account=obj.account, address_or_domain=obj.pattern, action=obj.action, note=obj.note
        )
        obj.pk = rule.pk
