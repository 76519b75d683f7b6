"""Staff roles. A moderator moderates mail and senders but cannot manage API tokens or
delete agents. Created after every migrate (idempotent) because permissions exist only
once their models have been migrated."""

from __future__ import annotations

from typing import Any

MODERATOR = "moderator"
MODERATOR_PERMISSIONS = {
    "mail": [
        "view_message",
        "change_message",
        "delete_message",
        "view_moderationitem",
        "change_moderationitem",
        "delete_moderationitem",
        "view_inbounddelivery",
        "view_attachment",
        "view_archivejob",
        "add_archivejob",
        "view_outboundapproval",
        "change_outboundapproval",
        "view_suppression",
        "add_suppression",
        "delete_suppression",
    ],
    "directory": [
        "view_agent",
        "view_sender",
        "change_sender",
        "add_sender",
        "view_senderrule",
        "add_senderrule",
        "change_senderrule",
        "delete_senderrule",
    ],
    "webhooks": ["view_event"],
}


def ensure_moderator_group(**kwargs: Any) -> None:
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=MODERATOR)
    wanted = [
        perm
        for app, codenames in MODERATOR_PERMISSIONS.items()
        for perm in Permission.objects.filter(content_type__app_label=app, codename__in=codenames)
    ]
    group.permissions.add(*wanted)
