"""Settings for the processes of the crash test: production settings plus a broker that
re-delivers a dead worker's unacknowledged tasks within seconds, a fast sweeper and
webhook dispatcher, and no DNS (all traffic stays on 127.0.0.1)."""

from __future__ import annotations

import os

from assmbl.settings import *  # noqa: F403
from assmbl.settings import CELERY_BEAT_SCHEDULE

CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CRASH_VISIBILITY_TIMEOUT", "10"))}
CELERY_BEAT_SCHEDULE = {
    **CELERY_BEAT_SCHEDULE,
    "sweep-stored-deliveries": {"task": "mail.tasks.sweep_stored_deliveries", "schedule": 5.0},
    "dispatch-webhook-deliveries": {"task": "webhooks.tasks.dispatch_due_deliveries", "schedule": 2.0},
    "sweep-queued-messages": {"task": "mail.tasks.sweep_queued_messages", "schedule": 5.0},
}
TRUST_DNS_RESOLVER = "mail.authn.dns_offline"
# Redis restarts here without its data, losing queued webhook tasks: queue them again soon.
WEBHOOKS_QUEUE_LEASE_SECONDS = 60
