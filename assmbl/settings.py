"""Settings for Assmbl Mail. Every value comes from the environment (see .env.example).

With nothing set, the service runs embedded: SQLite in DATA_DIR, raw mail on the local
filesystem, a broker that needs no server. The same code runs in production with
DATABASE_URL, CELERY_BROKER_URL, CACHE_URL, MAIL_STORAGE=s3 and MAIL_OUTBOUND=ses.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dj_database_url

from assmbl.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules or env_bool("ASSMBL_TESTING", False)

# Checked by assmbl.checks (assmbl.E001/E002): outside debug a missing secret stops the
# service instead of falling back to a key anyone can read in this file.
INSECURE_PLACEHOLDER = "insecure-development-only"
SECRET_KEY = env_str("SECRET_KEY") or INSECURE_PLACEHOLDER
TOKEN_PEPPER = env_str("TOKEN_PEPPER") or INSECURE_PLACEHOLDER

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The root of links we hand out (upload_url, challenge links). Unset: where `serve` serves,
# which tells its processes its port as HTTP_PORT.
PUBLIC_BASE_URL = (env_str("PUBLIC_BASE_URL") or f"http://127.0.0.1:{env_int('HTTP_PORT', 8000, minimum=1)}").rstrip(
    "/"
)

INSTALLED_APPS = [
    "assmbl.admin.AssmblAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "anymail",
    "assmbl",
    "directory",
    "mail",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "assmbl.urls"
WSGI_APPLICATION = "assmbl.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the SMTP listener and the worker read while one writes;
    # IMMEDIATE transactions take the write lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
IS_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttling, SNS certificate cache) ------------------------------------------
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "assmbl"}}
# The API's rate-limit counters when CACHE_URL is not Redis: a file every local process shares.
RATE_LIMIT_DB = DATA_DIR / "ratelimit.sqlite3"

# --- Mail identity and limits --------------------------------------------------------------
MAIL_DOMAIN = env_str("MAIL_DOMAIN", "agents.localhost").lower()
SENDER_VERIFICATION_ENABLED = env_bool("SENDER_VERIFICATION_ENABLED", True)
# SES accepts and delivers messages up to 40 MB; we use the same cap everywhere.
MAX_MESSAGE_BYTES = env_int("MAX_MESSAGE_BYTES", 40 * 1024 * 1024, minimum=1024)
MAX_HEADER_BYTES = env_int("MAX_HEADER_BYTES", 128 * 1024, minimum=1024)
MAX_MIME_DEPTH = env_int("MAX_MIME_DEPTH", 32, minimum=1)
MAX_MIME_PARTS = env_int("MAX_MIME_PARTS", 1000, minimum=1)
PARSE_TIME_BUDGET_SECONDS = env_int("PARSE_TIME_BUDGET_SECONDS", 10, minimum=1)
# What builds an incoming mail's parse tree (mail/parsing.py, docs/decisions/0021-mimetree.md):
# "mimetree" (mail in the usual shape without the feed parser) | "stdlib" (the feed parser only).
MAIL_PARSER = env_str("MAIL_PARSER", "mimetree")
# Recipients (to + cc + bcc) of one message sent through the API.
MAX_RECIPIENTS = env_int("MAX_RECIPIENTS", 50, minimum=1)
MAX_ATTACHMENT_BYTES = env_int("MAX_ATTACHMENT_BYTES", 25 * 1024 * 1024, minimum=1)
# JSON request bodies; Django answers larger ones with RequestDataTooBig, mapped to 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024)

# --- Storage: raw MIME and attachments -------------------------------------------------------
MAIL_STORAGE = env_str("MAIL_STORAGE", "file")  # "file" | "s3"
# File storage: raw MIME is synced to disk (one syncfs per accepted batch) before its
# delivery rows commit, so the listener's 250 survives a power cut. 0 only on a disposable
# machine.
MAIL_STORAGE_FSYNC = env_bool("MAIL_STORAGE_FSYNC", True)
AWS_REGION = env_str("AWS_REGION", env_str("AWS_DEFAULT_REGION", "us-east-1"))
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
MAIL_S3_BUCKET = env_str("MAIL_S3_BUCKET")
MAIL_S3_PREFIX = env_str("MAIL_S3_PREFIX", "raw")
ARCHIVE_S3_BUCKET = env_str("ARCHIVE_S3_BUCKET") or MAIL_S3_BUCKET
ARCHIVE_S3_PREFIX = env_str("ARCHIVE_S3_PREFIX", "archive")

if MAIL_STORAGE == "s3":
    _s3: dict[str, Any] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "region_name": AWS_REGION,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "signature_version": "s3v4",
            "file_overwrite": True,
            "default_acl": None,
            # open() downloads into a temp file; past 2 MiB it spills to disk instead of
            # holding a 40 MB message in the worker's memory (the default is unlimited).
            "max_memory_size": 2 * 1024 * 1024,
        },
    }
    _mail_storage: dict[str, Any] = {
        **_s3,
        "OPTIONS": {**_s3["OPTIONS"], "bucket_name": MAIL_S3_BUCKET, "location": MAIL_S3_PREFIX},
    }
    _archive_storage = {
        **_s3,
        "OPTIONS": {**_s3["OPTIONS"], "bucket_name": ARCHIVE_S3_BUCKET, "location": ARCHIVE_S3_PREFIX},
    }
else:
    _mail_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "mail"), "allow_overwrite": True},
    }
    _archive_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "archive"), "allow_overwrite": True},
    }

STORAGES: dict[str, dict[str, Any]] = {
    "default": _mail_storage,
    # Archived raw MIME lives here, with its own lifecycle (an S3 prefix or bucket).
    "archive": _archive_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Outbound mail ---------------------------------------------------------------------------
MAIL_OUTBOUND = env_str("MAIL_OUTBOUND", "local")  # "local" | "smtp" | "ses"
OUTBOUND_SMTP_URL = env_str("OUTBOUND_SMTP_URL")
OUTBOX_DIR = DATA_DIR / "outbox"
EMAIL_BACKEND = {
    "ses": "anymail.backends.amazon_ses.EmailBackend",
    "smtp": "mail.backends.RelayEmailBackend",
}.get(MAIL_OUTBOUND, "mail.backends.LocalEmailBackend")
ANYMAIL = {
    "AMAZON_SES_CLIENT_PARAMS": {"region_name": AWS_REGION},
    "WEBHOOK_SECRET": env_str("ANYMAIL_WEBHOOK_SECRET") or None,
}
SES_CONFIGURATION_SET = env_str("SES_CONFIGURATION_SET")
SES_SNS_TOPIC_ARNS = env_list("SES_SNS_TOPIC_ARNS")
SES_SQS_QUEUE_URL = env_str("SES_SQS_QUEUE_URL")
SES_RULE_SET_NAME = env_str("SES_RULE_SET_NAME", "assmbl-mail")

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
# The transport class for the URL's scheme; None: kombu's own.
CELERY_BROKER_TRANSPORT: str | None = None
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # kombu writes its fanout/pidbox state to ./control unless told otherwise.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # Consumers' wake sockets: a publish wakes them at once (compat/kombu_fs.py).
        "wake_folder": str(_broker_dir / "wake"),
    }
    CELERY_BROKER_TRANSPORT = "compat.kombu_fs:Transport"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Each class of work has its own queue and its own workers (manage.py serve), so a backlog of
# webhook attempts to a receiver that is down never delays indexing or sending. `celery`, the
# default queue, takes the housekeeping (archive jobs, purges). A worker started without -Q
# consumes all four, so a one-worker deployment still runs everything.
CELERY_TASK_QUEUES = {q: {"exchange": q, "routing_key": q} for q in ("ingest", "send", "webhooks", "content", "celery")}
CELERY_TASK_ROUTES = {
    "mail.tasks.process_deliveries": {"queue": "ingest"},
    "mail.tasks.sweep_stored_deliveries": {"queue": "ingest"},
    "mail.tasks.send_message": {"queue": "send"},
    "mail.tasks.sweep_queued_messages": {"queue": "send"},
    "webhooks.tasks.*": {"queue": "webhooks"},
    "mail.tasks.extract_content": {"queue": "content"},
    "mail.tasks.convert_attachment_text": {"queue": "content"},
}
# A worker that consumes only the content queue lowers its CPU priority by this much (nice,
# 0-19; 0 keeps it): content extraction costs a few times what indexing a mail does, and
# under a burst it waits for spare CPU rather than slow indexing down (assmbl/celery.py).
CONTENT_WORKER_NICE = min(env_int("CONTENT_WORKER_NICE", 10, minimum=0), 19)

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["directory.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's, refusing deep nesting and lone surrogates (assmbl/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["assmbl.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "assmbl.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["assmbl.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env_str("API_RATE_LIMIT", "1200/min")},
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Assmbl Mail API",
    "DESCRIPTION": "Email for AI agents: inbox, sending, labels, archive, webhooks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Local SMTP listener ------------------------------------------------------------------------
SMTP_HOST = env_str("SMTP_HOST", "127.0.0.1")
SMTP_PORT = env_int("SMTP_PORT", 2525, minimum=1)
# Recipients of one SMTP transaction: RFC 5321 4.5.3.1.8 asks for at least 100; past the
# limit RCPT gets 452 and the client sends the rest in another transaction.
SMTP_MAX_RECIPIENTS = env_int("SMTP_MAX_RECIPIENTS", 100, minimum=100)
# Open sessions one client address may hold in one listener process (0: no cap); the next
# connection gets 421. AUTHSERV_TRUSTED_RELAYS (your own front MTA) are not capped.
SMTP_MAX_SESSIONS_PER_IP = env_int("SMTP_MAX_SESSIONS_PER_IP", 20, minimum=0)
# The longest a session may last, however busy it keeps (0: no limit); then 421 and close.
# aiosmtpd's own timeout only ends a session that has been idle for five minutes.
SMTP_SESSION_DEADLINE = env_int("SMTP_SESSION_DEADLINE", 600, minimum=0)
# The longest line of a message over SMTP, in octets on the wire without its CRLF. RFC 5321
# says 1,000, but real mail has longer lines (Postfix takes 2,048 and folds the rest);
# past this one DATA gets 552 5.3.4.
SMTP_MAX_LINE_BYTES = env_int("SMTP_MAX_LINE_BYTES", 64 * 1024, minimum=998)
# STARTTLS on both ports: a PEM certificate (chain) and its key (the key may be in the same
# file); reread on SIGHUP. Unset: no STARTTLS, and submission cannot authenticate anyone.
# make run makes a self-signed pair in DATA_DIR.
SMTP_TLS_CERT = env_str("SMTP_TLS_CERT")
SMTP_TLS_KEY = env_str("SMTP_TLS_KEY")
# Authenticated submission for agents (STARTTLS, then AUTH with the agent's address and
# token), on SMTP_HOST; 0: off. make run: 2587.
SUBMISSION_PORT = env_int("SUBMISSION_PORT", 0, minimum=0)

# --- Django basics -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
LOGIN_URL = "admin:login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

CELERY_BEAT_SCHEDULE = {
    "sweep-stored-deliveries": {"task": "mail.tasks.sweep_stored_deliveries", "schedule": 60.0},
}

# --- Webhooks and the event log ----------------------------------------------------------------
# Loopback targets (127.0.0.0/8, ::1) for local development only; every other non-global
# address is always refused by webhooks.egress.
WEBHOOKS_ALLOW_LOOPBACK = env_bool("WEBHOOKS_ALLOW_LOOPBACK", False)
WEBHOOKS_TIMEOUT_SECONDS = env_int("WEBHOOKS_TIMEOUT_SECONDS", 15, minimum=1)
# An event's payload (the inbox item) is truncated to fit this many bytes of JSON.
WEBHOOKS_MAX_PAYLOAD_BYTES = env_int("WEBHOOKS_MAX_PAYLOAD_BYTES", 65536, minimum=4096)
WEBHOOKS_DISPATCH_BATCH = env_int("WEBHOOKS_DISPATCH_BATCH", 50, minimum=1)
# At most this many deliveries queued for the webhooks worker at once; the rest wait in the
# database, due, until the queue has room (webhooks.services.deliveries_claim).
WEBHOOKS_MAX_IN_FLIGHT = env_int("WEBHOOKS_MAX_IN_FLIGHT", 200, minimum=1)
# Threads of the webhooks worker: attempts wait on the network, not the CPU.
WEBHOOKS_WORKER_CONCURRENCY = env_int("WEBHOOKS_WORKER_CONCURRENCY", 8, minimum=1)
# How long a queued delivery waits for its task before the dispatcher takes the task for lost
# (a broker restarted without its data; a filesystem-broker worker killed holding it) and
# queues it again. Longer than a full queue takes to drain, WEBHOOKS_MAX_IN_FLIGHT attempts of
# up to WEBHOOKS_TIMEOUT_SECONDS on WEBHOOKS_WORKER_CONCURRENCY threads (200 x 15 s / 8 = 6
# min): a task that was only slow finds its row taken and does nothing.
WEBHOOKS_QUEUE_LEASE_SECONDS = env_int("WEBHOOKS_QUEUE_LEASE_SECONDS", 900, minimum=60)
WEBHOOKS_DISABLE_AFTER_DAYS = env_int("WEBHOOKS_DISABLE_AFTER_DAYS", 5, minimum=1)
# Events older than this may be pruned (manage.py prune_events); older cursors get 410.
WEBHOOKS_EVENT_RETENTION_DAYS = env_int("WEBHOOKS_EVENT_RETENTION_DAYS", 30, minimum=1)
# GET /v1/events only returns events at least this old; see webhooks/events.py for why.
WEBHOOKS_EVENTS_VISIBILITY_LAG_MS = env_int("WEBHOOKS_EVENTS_VISIBILITY_LAG_MS", 500, minimum=0)
# Fill in, as the event log is read, what a payload could not carry when it was recorded:
# message.received gets ExtractedText and Codes for every agent (GET /v1/events, the SDK,
# MCP), though ingest computes content only for agents whose webhooks push it.
WEBHOOKS_PAYLOAD_COMPLETERS = {"message.received": "mail.message_content.message_received_payloads_complete"}
CELERY_BEAT_SCHEDULE["dispatch-webhook-deliveries"] = {
    "task": "webhooks.tasks.dispatch_due_deliveries",
    "schedule": 3.0,
    # A tick that waited past the next one is dropped, not run late: ticks never pile up.
    "options": {"expires": 3.0},
}
CELERY_BEAT_SCHEDULE["prune-events"] = {"task": "webhooks.tasks.prune_events", "schedule": 3600.0}
# Waiting requests (GET /v1/events?wait=, GET /v1/events/stream) one token may hold open at
# once, across every web process; the next gets 429 too_many_waits.
WAITS_PER_TOKEN = env_int("WAITS_PER_TOKEN", 16, minimum=1)
# --- Attachments ---------------------------------------------------------------------------------
# Per message: the sum of the attachments of one send. Base64 inflates by 4/3, so 28 MiB of
# attachments is about 37.3 MiB on the wire, inside SES's 40 MB with room for the body.
MAX_MESSAGE_ATTACHMENT_BYTES = env_int("MAX_MESSAGE_ATTACHMENT_BYTES", 28 * 1024 * 1024, minimum=1)
MAX_ATTACHMENTS_PER_MESSAGE = env_int("MAX_ATTACHMENTS_PER_MESSAGE", 20, minimum=1)
MAX_ATTACHMENT_FILENAME_CHARS = env_int("MAX_ATTACHMENT_FILENAME_CHARS", 150, minimum=16)
# How long an unclaimed upload (and its upload URL) lives before the sweep deletes it.
ATTACHMENT_UPLOAD_TTL_SECONDS = env_int("ATTACHMENT_UPLOAD_TTL_SECONDS", 24 * 3600, minimum=60)
# Lifetime of the presigned GET URL a download redirects to in S3 mode.
# GET /v1/messages/{id}/attachments/{att}/text converts at most this many bytes (413 above).
ATTACHMENT_TEXT_MAX_BYTES = env_int("ATTACHMENT_TEXT_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
# A conversion runs in the content worker and is stopped after this many seconds (415 then);
# a read waits this long for a conversion under way before answering 503 with Retry-After.
ATTACHMENT_TEXT_TIME_LIMIT = env_int("ATTACHMENT_TEXT_TIME_LIMIT", 30, minimum=1)
ATTACHMENT_TEXT_WAIT_SECONDS = env_int("ATTACHMENT_TEXT_WAIT_SECONDS", 10, minimum=0)
ATTACHMENT_DOWNLOAD_URL_TTL_SECONDS = env_int("ATTACHMENT_DOWNLOAD_URL_TTL_SECONDS", 300, minimum=10)
CELERY_BEAT_SCHEDULE["sweep-expired-attachments"] = {
    "task": "mail.tasks.sweep_expired_attachments",
    "schedule": 600.0,
}
# --- AWS: SES inbound over SNS/SQS, receipt rules, backfill -------------------------------------
# The callable that fetches SNS certificate URLs and SubscribeURLs (tests inject a fake).
SES_SNS_FETCHER = env_str("SES_SNS_FETCHER", "mail.sources.sns.url_fetch")
# The topic the receipt rule's S3 action notifies; defaults to the first allowed topic.
SES_INBOUND_TOPIC_ARN = env_str("SES_INBOUND_TOPIC_ARN") or (SES_SNS_TOPIC_ARNS[0] if SES_SNS_TOPIC_ARNS else "")
SES_RULE_NAME = env_str("SES_RULE_NAME", "assmbl-inbound")
SES_SQS_WAIT_SECONDS = env_int("SES_SQS_WAIT_SECONDS", 20, minimum=0)
SES_SQS_VISIBILITY_SECONDS = env_int("SES_SQS_VISIBILITY_SECONDS", 300, minimum=0)
BACKFILL_CHECKPOINT = env_str("BACKFILL_CHECKPOINT", str(DATA_DIR / "backfill-checkpoint.json"))
# --- Directory and trust ---------------------------------------------------------------------
# The callable that answers DNS for the local DKIM/SPF checks (a dotted path, or a callable in tests).
# Tests default to an offline resolver (every name is empty): no test may query real DNS.
TRUST_DNS_RESOLVER: object = env_str(
    "TRUST_DNS_RESOLVER", "mail.authn.dns_offline" if TESTING else "mail.authn.dns_resolve"
)
TRUST_DNS_TIMEOUT_SECONDS = env_int("TRUST_DNS_TIMEOUT_SECONDS", 3, minimum=1)
# Authentication-Results headers are trusted only when written by this authserv-id (our own
# front MTA) and received from one of these relays; otherwise they are the sender's text.
AUTHSERV_ID = env_str("AUTHSERV_ID")
AUTHSERV_TRUSTED_RELAYS = env_list("AUTHSERV_TRUSTED_RELAYS")
CHALLENGE_WINDOW_SECONDS = env_int("CHALLENGE_WINDOW_SECONDS", 24 * 3600, minimum=1)
CHALLENGE_TTL_SECONDS = env_int("CHALLENGE_TTL_SECONDS", 7 * 24 * 3600, minimum=60)
# --- Inbox API -------------------------------------------------------------------------------
# First, so an oversized API body is refused with the envelope before anything reads it.
MIDDLEWARE = ["assmbl.middleware.ApiEnvelopeMiddleware", *MIDDLEWARE]
SPECTACULAR_SETTINGS["SECURITY"] = [{"bearerAuth": []}]
# Swagger UI served from our own static files: /v1/docs works on a machine without internet.
INSTALLED_APPS = [*INSTALLED_APPS, "drf_spectacular_sidecar"]
SPECTACULAR_SETTINGS["SWAGGER_UI_DIST"] = "SIDECAR"
SPECTACULAR_SETTINGS["SWAGGER_UI_FAVICON_HREF"] = "SIDECAR"
SPECTACULAR_SETTINGS["REDOC_DIST"] = "SIDECAR"
# --- Input schema: a PATCH body's schema states its own required fields (read and
# archive need theirs) instead of a "Patched" copy with none; OpenAPI links for stateful tests.
SPECTACULAR_SETTINGS["COMPONENT_SPLIT_PATCH"] = False
# 3.1: JSON Schema 2020-12, so a schema can say what the server checks (propertyNames of
# the X- headers of a send, `not`).
SPECTACULAR_SETTINGS["OAS_VERSION"] = "3.1.0"
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    "assmbl.openapi.add_links",
]
# --- Sending ---------------------------------------------------------------------------------------
# Bot-loop breaker: more than LOOP_MAX_MESSAGES agent-to-agent messages in one thread
# within LOOP_WINDOW_SECONDS → 429 loop_detected.
LOOP_MAX_MESSAGES = env_int("LOOP_MAX_MESSAGES", 20, minimum=1)
LOOP_WINDOW_SECONDS = env_int("LOOP_WINDOW_SECONDS", 600, minimum=1)
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600, minimum=60)
if SES_CONFIGURATION_SET:
    ANYMAIL["AMAZON_SES_CONFIGURATION_SET_NAME"] = SES_CONFIGURATION_SET
CELERY_BEAT_SCHEDULE["purge-send-requests"] = {"task": "mail.tasks.purge_send_requests", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["sweep-queued-messages"] = {"task": "mail.tasks.sweep_queued_messages", "schedule": 120.0}
# The sweep re-queues outbound messages still queued this long after they were queued
# (a send task lost with a broker restart, or a release killed between commit and publish).
SEND_SWEEP_AFTER_SECONDS = env_int("SEND_SWEEP_AFTER_SECONDS", 300, minimum=1)
# A send claimed this long ago and never recorded: its worker died during the handoff. The
# sweep marks it failed ("in doubt"), never resends it (the provider may have it).
SEND_CLAIM_TIMEOUT_SECONDS = env_int("SEND_CLAIM_TIMEOUT_SECONDS", 900, minimum=60)
# Governed sending: scheduled mail (send_at, the undo window) is released from the database.
SCHEDULED_RELEASE_SECONDS = env_int("SCHEDULED_RELEASE_SECONDS", 5, minimum=1)
CELERY_BEAT_SCHEDULE["release-scheduled-messages"] = {
    "task": "mail.tasks.release_scheduled_messages",
    "schedule": float(SCHEDULED_RELEASE_SECONDS),
    # A tick that waited past the next one is dropped: the next tick releases the same rows.
    "options": {"expires": float(SCHEDULED_RELEASE_SECONDS)},
}
CELERY_TASK_ROUTES["mail.tasks.release_scheduled_messages"] = {"queue": "send"}
# --- Reliability -----------------------------------------------------------------------------
# The sweeper re-queues inbound deliveries still unprocessed after this many seconds (a task
# lost with a killed worker or a restarted broker). Processing is idempotent.
DELIVERY_SWEEP_AFTER_SECONDS = env_int("DELIVERY_SWEEP_AFTER_SECONDS", 120, minimum=1)
# --- Scale: the run-stack topology (PostgreSQL + Redis) ---------------------------------------
# Persistent connections (DB_CONN_MAX_AGE, above; run-stack uses 60) save a connect per request
# or task; the health check makes a connection that PostgreSQL dropped (restart, failover,
# idle timeout) reconnect on the next request instead of failing it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DB_CONN_HEALTH_CHECKS", True)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # With acks_late, Redis re-delivers a task whose worker died after this many seconds;
    # it must exceed the longest task (a 40 MB parse is seconds), and the sweeper covers
    # a lost publish.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery workers only (run-stack sets it there): the index a worker writes can be rebuilt
# from the stored bytes, and a delivery whose "processed" commit is lost stays "stored" and
# is re-processed by the sweeper, idempotently. So workers need not wait for the WAL
# flush; the SMTP listener and the API, whose commits are promises, keep the default (on).
DB_SYNCHRONOUS_COMMIT = env_str("DB_SYNCHRONOUS_COMMIT")
if IS_POSTGRES and DB_SYNCHRONOUS_COMMIT in ("off", "local", "remote_write", "on"):
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c synchronous_commit={DB_SYNCHRONOUS_COMMIT}"
# --- smtp listener ---
# Group commit: the listener stores the DATA of concurrent sessions in one transaction (one
# durable commit, one queued task) of at most this many messages; each session still gets
# its 250 only after the commit that holds its message. WAIT_MS > 0 lingers that long for
# a group to fill (more mail per commit, more latency per mail); 0 takes what is waiting.
SMTP_GROUP_COMMIT_MAX = env_int("SMTP_GROUP_COMMIT_MAX", 100, minimum=1)
SMTP_GROUP_COMMIT_WAIT_MS = env_int("SMTP_GROUP_COMMIT_WAIT_MS", 0, minimum=0)
# Processing is queued per batch of group commits (a worker's cost per mail halves from
# batches of 10 to 100): when it holds this many deliveries, when its first delivery has
# waited this long, or at once for the first mail after a quiet spell (mail.smtp.GroupCommitter).
SMTP_PROCESS_BATCH_MAX = env_int("SMTP_PROCESS_BATCH_MAX", 100, minimum=1)
SMTP_PROCESS_BATCH_WAIT_MS = env_int("SMTP_PROCESS_BATCH_WAIT_MS", 100, minimum=0)
# How long the listener remembers that a recipient is an active agent and that a sender is
# not blocked for it (0: ask the database every time). Within this window a deactivated
# agent or a newly blocked sender can still get a 250; the worker checks both again and
# stores such mail as an unknown recipient or as blocked. Refusals are never cached.
SMTP_LOOKUP_CACHE_MS = env_int("SMTP_LOOKUP_CACHE_MS", 5000, minimum=0)
# Threads for the RCPT/DATA checks (database lookups on a cache miss, SPF/DKIM DNS): how many
# sessions can wait on DNS at once.
SMTP_CHECK_THREADS = env_int("SMTP_CHECK_THREADS", 32, minimum=1)

# --- Tests (last, so that it overrides every block above) ------------------------------------
if TESTING:
    # Tests run tasks in-process and keep their files out of the developer's DATA_DIR.
    import tempfile

    _test_dir = Path(tempfile.mkdtemp(prefix="assmbl-test-"))
    STORAGES["default"]["OPTIONS"]["location"] = (
        str(_test_dir / "mail") if MAIL_STORAGE != "s3" else STORAGES["default"]["OPTIONS"].get("location")
    )
    STORAGES["archive"]["OPTIONS"]["location"] = (
        str(_test_dir / "archive") if MAIL_STORAGE != "s3" else STORAGES["archive"]["OPTIONS"].get("location")
    )
    OUTBOX_DIR = _test_dir / "outbox"
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://")
    if CELERY_BROKER_URL != "filesystem://":
        CELERY_BROKER_TRANSPORT = None  # the filesystem transport's class, with another URL
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    WHITENOISE_USE_FINDERS = True
    STATIC_ROOT = _test_dir / "static"
    STATIC_ROOT.mkdir()
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"token": env_str("API_RATE_LIMIT", "100000/min")}
    RATE_LIMIT_DB = _test_dir / "ratelimit.sqlite3"
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        # A file, not :memory:, so the SMTP listener's threads share the test database.
        DATABASES["default"]["TEST"] = {"NAME": str(_test_dir / "test.sqlite3")}
