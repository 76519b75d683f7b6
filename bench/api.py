#!/usr/bin/env python
"""Inbox read latency at 10k and 1M messages in one mailbox, on PostgreSQL.

Seeds two mailboxes server-side (INSERT ... SELECT generate_series: one statement per
mailbox, minutes not hours), then measures server-side p50/p99 of:
  list first page, list deep page (keyset cursor at 90 %), q search (a common word and a
  rare token), q's body: full-text search (a rare and a common word) and a three-operator
  q, label filter, is_read=false filter, unread count.
The rows without "GET" build their queryset per call through the view's own function
(mail.api.inbox.inbox_listing, inbox_unread) and page it as the view does (page_after,
Page.body): the SQL of the request, without HTTP, DRF and the token. "GET" rows call the
WSGI application as gunicorn does (the whole request: middleware, auth, view, JSON). "old:"
rows time the formulations that were replaced, in the same run, for the ratio (the label
join with 20 samples). Each row also gives p99 less the time Python's garbage collector ran
inside the calls. The app is loaded as gunicorn loads it (assmbl/wsgi.py: the URLconf and
every view, then frozen out of the collector's reach) before timing; --no-gc-freeze leaves
that out, and full collections then cost 20-200 ms and land on about one call in 30.

    python bench/api.py [--sizes 10000,1000000] [--repeat 200] [--keep] [--plans FILE] [--no-gc-freeze]

The seeded mailboxes: subjects, previews and senders from 30 common words (SEED_SQL); each
message's extracted Text (CONTENT_SQL) from a vocabulary of 50,000 words with Zipf's law
(frequency ~ 1/rank, as in real text), so that body_search's statistics end in a long tail
as real mail's do: "remittance" in 30 % of the messages (body: common word), "uniq<g>" in
message g alone (body: rare word).

The pg_trgm GIN index on search_upper (UPPER(subject|body_preview|sender|from_name)) that
the search needs comes from the migrations; if it is missing the script creates it and says so.
Goals at 1M: list p99 <= 15 ms and <= 1.5x the 10k figure; search p99 <= 100 ms;
unread count p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cleanup, django_setup, fresh_pg_database, machine, percentile, pg_start, pg_stop, temp_dir  # noqa: E402

PAGE = 50

SEED_SQL = """
INSERT INTO mail_message (
  id, agent_id, direction, disposition, status, from_header, from_name, sender, "to", cc, bcc, reply_to,
  subject, body_preview, received_at, size, sha256, storage_key, internet_message_id, in_reply_to,
  "references", thread_id, idempotency_key, idempotency_sender, auto_submitted, is_read, archived, sender_verified,
  authentication, parse_status, quarantine_reason, provider_message_id, status_detail, created_at, updated_at)
SELECT
  'msg_' || %(tag)s || lpad(g::text, 8, '0'), %(agent)s, 'inbound',
  CASE WHEN g %% 200 = 0 THEN 'quarantined' ELSE 'inbox' END, 'received',
  initcap(w[1 + g %% 30]) || ' <user' || (g %% 5000) || '@example' || (g %% 50) || '.com>',
  initcap(w[1 + g %% 30]) || ' ' || initcap(w[1 + (g / 7) %% 30]),
  'user' || (g %% 5000) || '@example' || (g %% 50) || '.com',
  jsonb_build_array(%(address)s::text), '[]'::jsonb, '[]'::jsonb, '[]'::jsonb,
  initcap(w[1 + (g * 7) %% 30]) || ' ' || w[1 + (g * 13) %% 30] || ' ' || w[1 + (g / 3) %% 30] || ' ref-' || g,
  w[1 + (g * 11) %% 30] || ' ' || w[1 + (g * 17) %% 30] || ' ' || w[1 + (g * 19) %% 30] || ' ' || w[1 + (g / 11) %% 30]
    || ' ' || w[1 + (g * 23) %% 30] || ' please see the details below and reply when you can.',
  timestamp '2024-01-01' + make_interval(secs => g * 30), 5000, '', 'raw/' || g, '<' || g || '@example.com>', '',
  '', 'thr_' || %(tag)s || (g / 4), '', '', '',
  -- agents read old mail: the newest 2 %% are unread
  g <= %(n)s * 0.98, g %% 50 = 0, g %% 3 = 0,
  '{}'::jsonb, 'ok', '', '', '', now(), now()
FROM generate_series(1, %(n)s) AS g,
     (SELECT string_to_array(%(words)s, ' ') AS w) AS words
"""
WORDS = (
    "agent invoice meeting schedule report deploy pipeline review budget contract customer support ticket "
    "release staging verify account password reset quarterly forecast summary attached kindly regards "
    "thanks tomorrow friday monday update status"
)


# The Text of each message (mail_messagecontent, as the content task stores it): a greeting,
# "remittance advice enclosed." in 30 % of them (a common word of q's body:, in no subject or
# preview), "Reference uniq<g>." in one each (a rare one), then TEXT_DRAWS words drawn from a
# vocabulary of TEXT_VOCABULARY with Zipf's law (s = 1: the word of rank r is drawn with a
# probability proportional to 1/r, as words are in real text). A draw is floor(V ** u) for a
# u in [0, 1) hashed from (g, k): deterministic, server-side, no table of words. Ranks 1-30
# are the mailbox's WORDS; the others are pseudo-words spelled from the rank's digits in
# consonants (rank 4711 is "glcc"), none of them WORDS, "remittance" or "uniq<g>".
# Each word of rank r is then in about 1 - (1 - 1 / (r ln V)) ** DRAWS of the messages: ranks
# 1-30 in 17-98 %, rank 1,000 in 0.55 %, rank 10,000 in 0.055 %, the last in 0.011 % (110
# messages of 1M, one of 10k); ~56 distinct words and ~0.37 KB a message. Longer texts cost
# the seed more than they change the statistics: 150 draws (~0.9 KB, toasted) take 2.6x as
# long to write and their GIN index 2.3x as many entries.
TEXT_VOCABULARY = 50_000
TEXT_DRAWS = 60
CONTENT_SQL = """
INSERT INTO mail_messagecontent (message_id, version, data, computed_at)
SELECT 'msg_' || %(tag)s || lpad(g::text, 8, '0'), 1,
  jsonb_build_object('text',
    'Hello, ' || w[1 + (g * 3) %% 30] || '. '
    || CASE WHEN g %% 10 < 3 THEN 'Remittance advice enclosed. ' ELSE '' END
    || 'Reference uniq' || g || '. '
    || (SELECT string_agg(CASE WHEN r <= 30 THEN w[r] ELSE translate(r::text, '0123456789', 'bcdfghklmn') END, ' ')
        FROM (SELECT floor(exp((hashint8(g::bigint * 1024 + k)::float8 + 2147483648) / 4294967296
                               * ln(%(vocabulary)s)))::int AS r
              FROM generate_series(1, %(draws)s) AS k) AS draws)),
  now()
FROM generate_series(1, %(n)s) AS g,
     (SELECT string_to_array(%(words)s, ' ') AS w) AS words
"""


def seed(agent: Any, n: int, tag: str) -> float:
    from django.db import connection

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(SEED_SQL, {"tag": tag, "agent": agent.pk, "n": n, "address": agent.address, "words": WORDS})
        # Labels: 10 % "work", 1 % "important" (all of them archived: g %% 100 within
        # g %% 50, the worst case of a label with no visible message). A label row carries
        # copies of its message's agent, received_at and archived (mail/models.py).
        cur.execute(
            "INSERT INTO mail_messagelabel (message_id, name, agent_id, received_at, archived) "
            "SELECT m.id, CASE WHEN g %% 100 = 0 THEN 'important' ELSE 'work' END, m.agent_id, m.received_at, m.archived "
            "FROM generate_series(1, %(n)s) g JOIN mail_message m ON m.id = 'msg_' || %(tag)s || lpad(g::text, 8, '0') "
            "WHERE g %% 10 = 0",
            {"tag": tag, "n": n},
        )
        # Extracted content (mail_messagecontent, as the content task stores it) for q's body:
        cur.execute(
            CONTENT_SQL,
            {"tag": tag, "n": n, "words": WORDS, "vocabulary": TEXT_VOCABULARY, "draws": TEXT_DRAWS},
        )
    with connection.cursor() as cur:
        # As autovacuum would soon after a load: sets the visibility map index-only scans need.
        cur.execute("VACUUM ANALYZE mail_message")
        cur.execute("VACUUM ANALYZE mail_messagelabel")
        cur.execute("VACUUM ANALYZE mail_messagecontent")
    return time.perf_counter() - t0


def ensure_trgm() -> str:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'mail_message' AND indexdef ILIKE '%%gin_trgm_ops%%'"
        )
        existing = cur.fetchone()[0]
        if existing >= 1:
            return f"pg_trgm GIN index: {existing} found (from the migrations)"
        t0 = time.perf_counter()
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        cur.execute(
            "CREATE INDEX IF NOT EXISTS bench_msg_search_trgm ON mail_message USING gin (search_upper gin_trgm_ops)"
        )
        cur.execute("ANALYZE mail_message")
        return (
            f"pg_trgm GIN index: missing from the migrations, CREATED BY THE BENCH ({time.perf_counter() - t0:.0f} s)"
        )


class Samples(list):
    """Milliseconds per call; ``without_gc`` the same calls less the time Python's cyclic
    garbage collector ran inside them. A full (generation 2) collection in this process
    takes 50-90 ms on this machine and falls on whichever call allocates past its
    threshold, about one call in 30 here, list or search alike (Django's prefetches leave
    ~1,900 cyclic objects a page): it sets a p99 of 30 samples by itself, whatever the
    query, so both are shown."""

    without_gc: list[float]


_GC_MS = [0.0, 0.0]  # total ms spent collecting, start of the collection in progress


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _GC_MS[1] = time.perf_counter()
    else:
        _GC_MS[0] += (time.perf_counter() - _GC_MS[1]) * 1000


def _sample(fn: Callable[[], Any], out: Samples) -> None:
    gc_before = _GC_MS[0]
    t0 = time.perf_counter()
    fn()
    elapsed = (time.perf_counter() - t0) * 1000
    out.append(elapsed)
    out.without_gc.append(elapsed - (_GC_MS[0] - gc_before))


def _samples() -> Samples:
    out = Samples()
    out.without_gc = []
    return out


def timed(fn: Callable[[], Any], repeat: int) -> Samples:
    for _ in range(min(20, repeat)):
        fn()
    samples = _samples()
    for _ in range(repeat):
        _sample(fn, samples)
    return samples


def timed_pair(fn: Callable[[], Any], old: Callable[[], Any], repeat: int) -> tuple[Samples, Samples]:
    """Samples of ``fn`` and of the formulation it replaced, taken alternately, so that
    another process's load falls on both alike (the ratio is the figure to trust)."""
    for _ in range(min(20, repeat)):
        fn()
        old()
    samples = (_samples(), _samples())
    for _ in range(repeat):
        _sample(fn, samples[0])
        _sample(old, samples[1])
    return samples


def scenarios(agent: Any, token: str, n: int) -> dict[str, tuple[Callable[[], Any], Any]]:
    """name -> (callable, queryset for EXPLAIN or None)."""
    from django.urls import Resolver404, resolve

    from mail.api.inbox import inbox_listing, inbox_unread
    from mail.models import Message
    from mail.pagination import page_after
    from mail.serializers import message_item

    def inbox() -> Any:
        return Message.objects.for_agent(agent).inbox_filtered().in_listing_order()

    def listed(after: Any = None, **filters: Any) -> Callable[[], Any]:
        """One page as GET /v1/inbox reads it, the view's own queryset built per call."""
        return lambda: page_after(inbox_listing(agent=agent, **filters), limit=PAGE, after=after).body()

    deep = inbox().values_list("received_at", "id")[int(n * 0.9)]
    # "invoice" is in ~30 % of rows (subject, preview or From name); "ref-<n/2>" in exactly
    # one subject; "ref-99" in 1.1 % of subjects at 1M (ref-99, ref-990.., ref-9900..).
    common, rare, mid = "invoice", f"ref-{int(n * 0.5)}", "ref-99"
    pages = {
        "list first page": listed(),
        "list deep page (cursor)": listed(after=deep),
        "label=important": listed(label="important"),
        "label=work": listed(label="work"),
        "is_read=false": listed(is_read=False),
    }
    # "thanks tomorrow" (0.3 % of previews) is the costliest case of the trigram bitmap.
    searches = {
        "search common word": common,
        "search rare token": rare,
        "search mid term": mid,
        "search mid phrase": '"thanks tomorrow"',  # one quoted phrase in the grammar
        # q's grammar (mail.search): body: full text, a rare and a common word; three operators.
        "search body: rare word": f"body:uniq{int(n * 0.5)}",
        "search body: common word": "body:remittance",
        "search 3 operators": "from:example7.com subject:invoice -label:work",
    }
    # The formulation with_label() replaced, measured in the same run for the ratio.
    querysets = {"old: label=important, inbox join": inbox().filter(labels__name="important")}
    try:
        resolve("/v1/inbox")
        has_api = True
    except Resolver404:
        has_api = False

    out: dict[str, tuple[Callable[[], Any], Any]] = {}
    if has_api:
        client = WSGIClient(token)
        first = client.get(f"/v1/inbox?limit={PAGE}")
        assert first.status_code == 200, first.content[:300]
        urls = {
            "list first page": f"/v1/inbox?limit={PAGE}",
            "search common word": f"/v1/inbox?limit={PAGE}&q={common}",
            "search rare token": f"/v1/inbox?limit={PAGE}&q={rare}",
            "search mid term": f"/v1/inbox?limit={PAGE}&q={mid}",
            "search mid phrase": f"/v1/inbox?limit={PAGE}&q=%22thanks%20tomorrow%22",
            # q's grammar (mail.search): body: full text, rare and common; three operators.
            "search body: rare word": f"/v1/inbox?limit={PAGE}&q=body:uniq{int(n * 0.5)}",
            "search body: common word": f"/v1/inbox?limit={PAGE}&q=body:remittance",
            "search 3 operators": f"/v1/inbox?limit={PAGE}&q=from:example7.com%20subject:invoice%20-label:work",
            "label=important": f"/v1/inbox?limit={PAGE}&label=important",
            "label=work": f"/v1/inbox?limit={PAGE}&label=work",
            "is_read=false": f"/v1/inbox?limit={PAGE}&is_read=false",
        }
        for name, url in urls.items():
            out[f"GET {name}"] = (lambda url=url: _ok(client.get(url)), None)
        # A deep page: follow the API's own cursor for a few pages, then reuse it.
        cursor = first.json().get("next_cursor") or first.json().get("NextCursor")
        if cursor:
            out["GET list next page (cursor)"] = (
                lambda: _ok(client.get(f"/v1/inbox?limit={PAGE}&cursor={cursor}")),
                None,
            )
    # A page's plan is EXPLAINed from the queries its call runs (explain()).
    for name, page in pages.items():
        out[name] = (page, page)
    for name, term in searches.items():
        page = listed(q=term)
        out[name] = (page, page)
    for name, qs in querysets.items():
        out[name] = (lambda qs=qs: [message_item(m) for m in qs.as_items()[:PAGE]], qs)
    # The item SQL (with_item_relations' subqueries, docs/decisions/0040-item-sql.md) against
    # the plain ORM's prefetch of the same relations, alternately.
    out["old: list first page"] = (
        lambda: page_after(_plain_prefetch(Message.objects.for_agent(agent).inbox_filtered()), limit=PAGE).body(),
        None,
    )
    out = {name: out[name] for name in sorted(out, key=lambda name: name.startswith("old:"))}
    try:  # the count of the unread table (docs/decisions/0042); before it, of the queryset
        from mail.api.inbox import inbox_unread_count
        from mail.models import MessageUnread

        out["unread count"] = (lambda: inbox_unread_count(agent=agent), MessageUnread.objects.filter(agent=agent))
    except ImportError:
        out["unread count"] = (lambda: inbox_unread(agent=agent).count(), inbox_unread(agent=agent))
    # Not an API read: the lookup every ingest runs (mail/threads.py, "a reply that arrived
    # first"); it decides how ingestion slows down as a mailbox grows.
    child = (
        Message.objects.for_agent(agent)
        .filter(in_reply_to="<nobody@example.com>")
        .exclude(thread_id="")
        .values_list("thread_id", flat=True)
        .order_by("received_at", "id")
    )
    out["ingest: thread child lookup"] = (lambda: list(child[:1]), child)
    out.update(thread_scenarios(agent, token, has_api))
    return out


def seed_threads() -> float:
    """The Thread rows of the seeded mailboxes (threads of 4 messages), written by the data
    migration's own backfill (mail.threads.threads_backfill): its time is the migration's."""
    from mail.models import Message, MessageLabel, Thread
    from mail.threads import threads_backfill

    t0 = time.perf_counter()
    threads_backfill(message_model=Message, label_model=MessageLabel, thread_model=Thread, batch=2000)
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE mail_thread")
    return time.perf_counter() - t0


def thread_scenarios(agent: Any, token: str, has_api: bool) -> dict[str, tuple[Callable[[], Any], Any]]:
    """GET /v1/threads' first page, and POST /v1/messages/batch over the 100 newest messages
    (a label added then removed and the read state flipped, call after call, so every call
    changes all 100 rows and their 25 threads; then the label alone); and the honest case of
    the read state: every call marks unread 100 read messages that no call changed before
    (the first update of each row since the seed, oldest first), so the row's page holds no
    space freed by an earlier version of it. That row makes one call per 100 read messages
    of the mailbox at most (at 10k: ~97 calls, its warm-up included)."""
    from mail.models import Message
    from mail.serializers import thread_item
    from mail.threads import threads_filtered

    first = threads_filtered(agent=agent).in_activity_order()
    out: dict[str, tuple[Callable[[], Any], Any]] = {
        "threads first page": (lambda: [thread_item(t) for t in first[:PAGE]], first),
    }
    if not has_api:
        return out
    client = WSGIClient(token)
    ids = list(
        Message.objects.for_agent(agent).in_inbox().order_by("-received_at", "-id").values_list("id", flat=True)[:100]
    )
    flip = [True]

    def batch(read: bool = True) -> Any:
        flip[0] = not flip[0]
        labels = {"add_labels": ["bench"]} if flip[0] else {"remove_labels": ["bench"]}
        return _ok(client.post("/v1/messages/batch", {"ids": ids, **labels, **({"is_read": flip[0]} if read else {})}))

    out["GET threads first page"] = (lambda: _ok(client.get(f"/v1/threads?limit={PAGE}")), None)
    out["POST batch 100 ids (labels, read)"] = (batch, None)
    # Labels alone leave every indexed column of mail_message as it was: the UPDATE of
    # updated_at can be HOT (and, since the unread table, so can is_read's).
    out["POST batch 100 ids (labels)"] = (lambda: batch(read=False), None)
    read = (
        Message.objects.for_agent(agent)
        .in_inbox()
        .filter(is_read=True)
        .exclude(id__in=ids)
        .order_by("received_at", "id")
        .values_list("id", flat=True)
    )
    fresh = iter(list(chunk) for chunk in _chunks(list(read), 100))

    def batch_fresh() -> Any:
        return _ok(client.post("/v1/messages/batch", {"ids": next(fresh), "is_read": False}))

    batch_fresh.calls = len(read) // 100  # type: ignore[attr-defined]
    out["POST batch 100 fresh ids (read)"] = (batch_fresh, None)
    return out


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items) - size + 1, size)]


def _plain_prefetch(qs: Any) -> Any:
    """A listing as the plain ORM reads it: the item's columns, the agent joined, labels and
    attachments by prefetch_related (two more queries); what as_items() replaces."""
    from mail.items import ITEM_COLUMNS

    return qs.select_related("agent").only(*ITEM_COLUMNS).prefetch_related("labels", "attachments")


class WSGIClient:
    """GET through the WSGI application, as gunicorn calls it for a request (middleware,
    DRF, the view, the JSON body). Not Django's test Client: it connects two signal
    receivers per request whose weakref finalizers outlive it, so a long run accumulates
    objects that make every full garbage collection slower than in a server."""

    def __init__(self, token: str) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import RequestFactory

        self.factory = RequestFactory(HTTP_AUTHORIZATION=f"Bearer {token}")
        self.handler = WSGIHandler()

    def get(self, url: str) -> Any:
        status: list[str] = []
        body = b"".join(self.handler(self.factory.get(url).environ, lambda s, headers: status.append(s)))
        return SimpleNamespace(status_code=int(status[0].split()[0]), content=body, json=lambda: json.loads(body))

    def post(self, url: str, data: Any) -> Any:
        status: list[str] = []
        request = self.factory.post(url, json.dumps(data), content_type="application/json")
        body = b"".join(self.handler(request.environ, lambda s, headers: status.append(s)))
        return SimpleNamespace(status_code=int(status[0].split()[0]), content=body, json=lambda: json.loads(body))


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.content[:300]
    return response


def explain(qs: Any, name: str) -> str:
    if callable(qs):
        # A read in several queries: the plan of each of its queries.
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            qs()
        plans = []
        for i, query in enumerate(q["sql"] for q in ctx.captured_queries):
            if 'FROM "mail_message"' not in query:
                continue  # the prefetches of labels and attachments
            with connection.cursor() as cur:
                cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query}")
                plans.append(
                    f"-- query {i + 1} of {len(ctx.captured_queries)}\n" + "\n".join(r[0] for r in cur.fetchall())
                )
        return "\n".join(plans)
    if name == "unread count":
        sql, params = qs.values("pk").query.sql_with_params()
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM ({sql}) s", params)
            return "\n".join(row[0] for row in cur.fetchall())
    return qs[:PAGE].explain(analyze=True, buffers=True)


def seeded(sizes: list[int]) -> list[tuple[int, Any, str]]:
    """(size, agent, token) of a mailbox of each size, seeded."""
    from django.db import connection

    from directory.models import Account
    from directory.services import agent_create

    account = Account.objects.create(name="bench")
    # Trigram GIN indexes cost more to maintain row by row than to build once: set
    # the migrations' ones aside during the seed and rebuild them afterwards.
    with connection.cursor() as cur:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE (tablename = 'mail_message' AND indexdef ILIKE "
            "'%%gin_trgm_ops%%') OR indexname = 'mail_content_body_search'"
        )
        trgm = cur.fetchall()
        for name, _ in trgm:
            cur.execute(f'DROP INDEX "{name}"')
    mailboxes = []
    for n in sizes:
        agent, issued = agent_create(agent_id=f"bench{n}", account=account)
        seconds = seed(agent, n, f"{n}_")
        print(f"seeded {n:>9,} messages in {seconds:6.1f} s ({n / seconds:,.0f} rows/s)", flush=True)
        mailboxes.append((n, agent, issued.plaintext))
    seconds = seed_threads()
    print(f"thread rows of every mailbox by the data migration's backfill in {seconds:6.1f} s", flush=True)
    if trgm:
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            for _, definition in trgm:
                cur.execute(definition)
        print(f"rebuilt {len(trgm)} GIN indexes of the migrations in {time.perf_counter() - t0:.0f} s")
    return mailboxes


def reused(sizes: list[int]) -> list[tuple[int, Any, str]]:
    """(size, agent, token) of the mailboxes a --keep run seeded, each with a new token."""
    from directory.models import Agent, ApiToken
    from directory.services import token_create

    mailboxes = []
    for n in sizes:
        agent = Agent.objects.get(agent_id=f"bench{n}")
        issued = token_create(kind=ApiToken.Kind.AGENT, account=agent.account, agent=agent, label="bench --reuse")
        mailboxes.append((n, agent, issued.plaintext))
    print(f"reused the seeded mailboxes of {', '.join(f'{n:,}' for n in sizes)} messages", flush=True)
    return mailboxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the cluster and database (BENCH_PG_DIR) for a rerun")
    parser.add_argument("--plans", default="", help="write EXPLAIN ANALYZE of every query to this file")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the mailboxes that a --keep run seeded (BENCH_PG_DIR) instead of seeding again: "
        "one seed, then main and a branch back to back (migrations still run)",
    )
    parser.add_argument("--only", default="", help="time only the rows whose name holds one of these words (a,b)")
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="load the app as gunicorn does (assmbl/wsgi.py: the URLconf and every view, then "
        "gc.freeze()) before timing, so full collections skip the loaded code (default; "
        "--no-gc-freeze times a process that never froze it)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    gc.callbacks.append(_gc_callback)

    print(f"machine: {machine()}", flush=True)
    pg_dir = os.environ.get("BENCH_PG_DIR") or temp_dir("bench-api-pg-")
    data_dir = temp_dir("bench-api-")
    try:
        base = os.environ.get("BENCH_DATABASE_URL") or pg_start(
            pg_dir, int(os.environ.get("BENCH_PG_PORT", "54338")), durable=False
        )
        url = base.rsplit("/", 1)[0] + "/bench_api" if args.reuse else fresh_pg_database(base, "bench_api")
        # Persistent connections, as in production (docs/scale.md; run-stack): with the
        # default of 0 every request through the WSGI handler connects anew (~10 ms here).
        django_setup(url, data_dir, API_RATE_LIMIT="100000000/min", DB_CONN_MAX_AGE="60")
        mailboxes = reused(sizes) if args.reuse else seeded(sizes)
        print(ensure_trgm())

        if args.gc_freeze:
            import assmbl.wsgi  # noqa: F401

            print(f"assmbl.wsgi loaded: {gc.get_freeze_count():,} objects set aside from collections")
        results: dict[int, dict[str, list[float]]] = {}
        plans: list[str] = []
        for n, agent, token in mailboxes:
            results[n] = {}
            runs = scenarios(agent, token, n)
            only = [word for word in args.only.split(",") if word]
            for name, (fn, qs) in runs.items():
                if name in results[n] or (only and not any(word in name for word in only)):
                    continue  # timed with its new formulation, or not asked for
                if f"old: {name}" in runs:
                    # Alternately with the formulation it replaced: same load on both.
                    old_fn, old_qs = runs[f"old: {name}"]
                    results[n][name], results[n][f"old: {name}"] = timed_pair(fn, old_fn, args.repeat)
                    todo = [(name, qs), (f"old: {name}", old_qs)]
                else:
                    # The single-query formulations (one LIKE query, the inbox join) take
                    # ~1 s each at 1M: a few samples give their ratio.
                    legacy = name.startswith("old:") and name not in [f"old: {k}" for k in runs]
                    repeat = min(args.repeat, 20) if legacy else args.repeat
                    if hasattr(fn, "calls"):  # a row that can make only so many calls (fresh ids)
                        repeat = max(1, min(repeat, fn.calls - min(20, repeat)))
                    results[n][name] = timed(fn, repeat)
                    todo = [(name, qs)]
                for name, qs in todo:
                    s = results[n][name]
                    print(
                        f"  {n:>9,} {name:<34} p50 {percentile(s, 50):8.2f} ms  p99 {percentile(s, 99):8.2f} ms"
                        f"  p99 without GC {percentile(s.without_gc, 99):8.2f} ms",
                        flush=True,
                    )
                    if qs is not None and not name.startswith("GET") and not name.startswith("old: GET"):
                        plans.append(f"--- {n:,} messages: {name}\n{explain(qs, name)}")

        names = list(results[sizes[0]])
        header = f"{'query':<34}" + "".join(f"{f'{n:,} p50':>12}{f'{n:,} p99':>12}" for n in sizes)
        print(header + ("   p99 ratio" if len(sizes) > 1 else ""))
        for name in names:
            row = f"{name:<34}"
            for n in sizes:
                s = results[n][name]
                row += f"{percentile(s, 50):>11.2f}m{percentile(s, 99):>11.2f}m"
            if len(sizes) > 1:
                row += f"{percentile(results[sizes[-1]][name], 99) / percentile(results[sizes[0]][name], 99):>11.2f}x"
            print(row)
        big, small = sizes[-1], sizes[0]
        print("new / old, timed alternately in this run (p50, p99):")
        for name in names:
            if f"old: {name}" in results[big]:
                ratios = "  ".join(
                    f"{n:,}: {percentile(results[n][name], q) / percentile(results[n][f'old: {name}'], q):5.2f}x"
                    for n in sizes
                    for q in (50, 99)
                )
                print(f"  {name:<34} {ratios}")
        print("goals at the largest size (p99, ms):")
        for name in names:
            p99 = percentile(results[big][name], 99)
            p99_gc = percentile(results[big][name].without_gc, 99)
            if name.startswith("old:"):
                continue
            if name.startswith("ingest"):
                goal, extra = 5.0, " (no stated goal; 5 ms keeps ingest >= 200 msg/s per core)"
            elif "count" in name:
                goal, extra = 10.0, ""
            elif "batch" in name:
                goal, extra = 50.0, ""
            elif "threads" in name:
                goal, extra = 20.0, ""
                if len(sizes) > 1:
                    ratio = p99 / percentile(results[small][name], 99)
                    extra = f" ratio to {small:,} {ratio:.2f}x (<= 1.5x: {'MET' if ratio <= 1.5 else 'NOT MET'})"
            elif "search" in name:
                goal, extra = 100.0, ""
            else:
                goal, extra = 15.0, ""
                if len(sizes) > 1 and name.startswith(("list", "GET list")):
                    ratio = p99 / percentile(results[small][name], 99)
                    extra = f" ratio to {small:,} {ratio:.2f}x (<= 1.5x: {'MET' if ratio <= 1.5 else 'NOT MET'})"
            print(
                f"  {name:<34} {p99:8.2f} <= {goal:5.0f}: {'MET' if p99 <= goal else 'NOT MET'}"
                f" (without GC {p99_gc:6.2f}: {'MET' if p99_gc <= goal else 'NOT MET'}){extra}"
            )
        if args.plans:
            Path(args.plans).write_text("\n\n".join(plans) + "\n")
            print(f"plans written to {args.plans}")
    finally:
        if not args.keep:
            pg_stop(pg_dir)
            cleanup(pg_dir)
        cleanup(data_dir)


if __name__ == "__main__":
    main()
