"""Reads of the mailbox: one method per API filter, named after it.

Every agent-facing read starts from ``Message.objects.for_agent(agent)`` so that scope
cannot be forgotten.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

from django.db import connections, models
from django.db.models import ExpressionWrapper, F, FilteredRelation, Q
from django.db.models.expressions import RawSQL

# The columns GET /v1/inbox?q= searches (API.md), each with a pg_trgm GIN index on
# UPPER(col) (mail/migrations/0002_inbox_api_search.py).
SEARCH_COLUMNS = ("subject", "body_preview", "sender", "from_name")

# How many listing rows a search page reads in index order before it decides how to go
# on (MessageQuerySet.search_first): a term in >= 5 % of the mailbox fills a page of 50
# there; none found means a rare term, which the trigram bitmap answers fast; a few found
# size the next window from their density, as long as the walk stays under
# SEARCH_WALK_MAX rows. A walk costs ~2.5 us a row at 1M; the trigram bitmap of a term in
# 0.3 % of the mailbox, 50-200 ms (bench/HISTORY.md, "api.py").
SEARCH_WINDOW = 1000
SEARCH_WALK_MAX = 30000

# The alias of the label row that with_label() joins: after() and in_listing_order() seek
# and sort on its copies of (received_at, message_id), the order of
# mail_label_agent_name_received.
_LABEL = "listed_label"
_LABEL_AT, _LABEL_ID = "listed_label_received_at", "listed_label_message_id"

# What with_item_relations() sets on each message, which message_item reads: the names
# of its labels, and its attachments as dicts of ITEM_ATTACHMENT_COLUMNS (JSON arrays in
# no particular order; None or [] when there are none, by database).
ITEM_LABELS, ITEM_ATTACHMENTS = "item_labels", "item_attachments"
ITEM_ATTACHMENT_COLUMNS = ("id", "filename", "content_type", "size", "content_id", "disposition", "part_index", "created_at")
# The columns message_item (mail/serializers.py) reads: all that a listing loads
# (as_items()). tests/mail/test_api_listing_queries.py fails when the two drift apart.
ITEM_COLUMNS = (
    "id", "agent__agent_id", "direction", "status", "from_header", "sender", "to", "cc", "subject",
    "body_preview", "received_at", "sender_verified", "authentication", "is_read", "archived",
    "disposition", "thread_id", "internet_message_id", "size",
)  # fmt: skip

# The model is bound where each queryset becomes a manager (mail.models), which this module
# cannot import: models imports it.
_M = TypeVar("_M", bound=models.Model)


class MessageQuerySet(models.QuerySet[_M, _M]):
    def for_agent(self, agent: Any) -> MessageQuerySet[_M]:
        return self.filter(agent=agent)

    def inbound(self) -> MessageQuerySet[_M]:
        return self.filter(direction="inbound")

    def outbound(self) -> MessageQuerySet[_M]:
        return self.filter(direction="outbound")

    def in_inbox(self) -> MessageQuerySet[_M]:
        """Inbound mail an agent should see: not quarantined, held or blocked."""
        return self.filter(direction="inbound", disposition="inbox")

    def in_moderation_queue(self) -> MessageQuerySet[_M]:
        """Inbound mail a moderator should look at: held, quarantined or blocked, and
        unverified mail that reached an inbox."""
        return self.filter(direction="inbound").filter(~Q(disposition="inbox") | Q(sender_verified=False))

    def older_than(self, cutoff: dt.datetime) -> MessageQuerySet[_M]:
        return self.filter(received_at__lt=cutoff)

    def not_archived(self) -> MessageQuerySet[_M]:
        return self.filter(archived=False)

    def archived(self) -> MessageQuerySet[_M]:
        return self.filter(archived=True)

    def unread(self) -> MessageQuerySet[_M]:
        return self.filter(is_read=False)

    def read(self) -> MessageQuerySet[_M]:
        return self.filter(is_read=True)

    def verified(self) -> MessageQuerySet[_M]:
        return self.filter(sender_verified=True)

    def with_label(self, name: str, *, include_archived: bool = True) -> MessageQuerySet[_M]:
        """Messages carrying the label ``name`` (exact); with ``include_archived=False``,
        only those not archived.

        Joined on the label row's copies of the message's agent and archived flag
        (MessageLabel): with the mailbox's ``agent_id = x`` carried over to the label row
        and ``NOT archived`` tested there, PostgreSQL walks mail_label_agent_name_visible (or
        ..._received with include_archived) from the cursor in listing order and probes
        mail_message once per label row until the page is full, instead of walking the whole
        inbox and probing the labels of every row (1.1 s at 1M for a label whose messages
        are all archived). after() and in_listing_order() use the label row's copies of
        (received_at, id) for the same reason. A message carries a name once
        (mail_label_message_name), so the join never repeats a message.
        """
        # alias()/annotate() with ** names: the stubs' plugin cannot follow them (Any).
        labelled: MessageQuerySet[_M] = self.alias(
            **{
                _LABEL: FilteredRelation(
                    "labels",
                    condition=Q(labels__name=name, labels__agent=F("agent"))
                    & (Q() if include_archived else Q(labels__archived=False)),
                ),
                _LABEL_AT: F(f"{_LABEL}__received_at"),
                _LABEL_ID: F(f"{_LABEL}__message_id"),
            }
        ).filter(**{f"{_LABEL_ID}__isnull": False})
        return labelled

    def search(self, q: str) -> MessageQuerySet[_M]:
        # icontains escapes %, _ and \ so they match literally (API.md), and on PostgreSQL
        # compiles to UPPER(col) LIKE UPPER(%s), which the pg_trgm expression indexes serve.
        return self.filter(_matches(q, SEARCH_COLUMNS))

    def search_first(self, q: str, n: int, *, after: tuple[dt.datetime, str] | None = None) -> list[Any]:
        """The first ``n`` messages matching ``q`` in listing order, strictly after ``after``:
        the rows of ``self.search(q).after(*after).in_listing_order()[:n]``, read so that
        neither a common, a mid-frequency nor a rare term is slow on PostgreSQL.

        One plan cannot serve all: the trigram bitmap fetches and sorts every match (305k
        rows and 0.9 s for a word in 30 % of 1M messages; 180 ms for a phrase in 0.3 %),
        while a walk in listing order that tests each row finds a common word's page in a
        few hundred rows but reads the whole mailbox for a rare one. So the ids are found
        in at most three statements, each a walk that stops at the page's last match or
        at its row budget (_search_walk):
        1. a walk of SEARCH_WINDOW rows: a page found there is a common term; no match
           there means a rare term, whose rows the trigram bitmap after the window finds;
        2. with some matches but not a page, one walk on from the window, up to
           SEARCH_WALK_MAX rows in all, if the density seen so far says the page is there
           (with a margin);
        3. what is still missing comes from the trigram bitmap after the last row walked.
        The walks and the bitmap's range are disjoint and consecutive, so the ids are
        those of the one query; the rows of the page are then read by id (one query,
        plus the prefetches of with_item_relations).
        """
        ids: list[str] = []
        hits, end = self._search_walk(q, n, SEARCH_WINDOW, after=after)
        ids += hits
        if end is not None and len(ids) < n and ids:
            # The rest of the page at the density seen so far, with a margin: walk on
            # unless that would pass SEARCH_WALK_MAX rows, where the bitmap is cheaper.
            needed = math.ceil((n - len(ids)) * SEARCH_WINDOW / len(ids) * 1.5)
            if SEARCH_WINDOW + needed <= SEARCH_WALK_MAX:
                hits, end = self._search_walk(q, n - len(ids), SEARCH_WALK_MAX - SEARCH_WINDOW, after=end)
                ids += hits
        if end is not None and len(ids) < n:
            rest = self.after(*end).search(q).select_related(None).prefetch_related(None)
            ids += rest.in_listing_order().values_list("pk", flat=True)[: n - len(ids)]
        return self._rows_by_id(ids)

    def _search_walk(
        self, q: str, n: int, budget: int, *, after: tuple[dt.datetime, str] | None
    ) -> tuple[list[str], tuple[dt.datetime, str] | None]:
        """Walk at most ``budget`` rows after ``after`` in listing order, testing each
        against ``q``: (the ids of the first ``n`` matches, and if the walk found fewer
        than ``n`` and did not reach the end of the listing, the listing keys of the
        ``budget``-th row, where the search goes on).

        The walk is one statement: the test is computed in the select list of an ordered,
        limited subquery and the outer query keeps the matches. Computed there, the test
        is not a filter the planner could serve from the trigram indexes or mis-estimate:
        the scan stays in index order and stops at the outer LIMIT (PostgreSQL and SQLite
        both pipeline it). The ``budget``-th row is only looked for when the walk fell
        short, from the listing index alone (a rank computed in the walk cost more: a
        WindowAgg, 0.5 us a row at 1M).
        """
        _, key = self._listing_keys()
        start = (self.after(*after) if after else self).select_related(None).prefetch_related(None)
        inner = (
            start.annotate(
                search_hit=ExpressionWrapper(_walk_test(q, self.db), output_field=models.BooleanField()),
                search_id=F(key),
            )
            .order_by(*self._walk_index_prefix(), *self._listing_keys())
            .values_list("search_id", "search_hit")[:budget]
        )
        sql, params = inner.query.get_compiler(using=self.db).as_sql()
        connection = connections[self.db]
        with connection.cursor() as cursor:
            hit = connection.ops.quote_name("search_hit")
            cursor.execute(f"SELECT * FROM ({sql}) search_walk WHERE search_walk.{hit} LIMIT %s", (*params, n))
            hits = [row[0] for row in cursor.fetchall()]
        if len(hits) == n:
            return hits, None
        end = list(start.in_listing_order().values_list("received_at", "id")[budget - 1 : budget])
        return hits, (end[0] if end else None)

    def _walk_index_prefix(self) -> tuple[str, ...]:
        """The leading columns of mail_message_agent_inbox, if this queryset fixes each of
        them to one value (the inbox without archived mail), else nothing.

        Sorting the walk on them as well changes no order (each is one value) but names
        the index the walk is meant for: without them, the planner walks
        mail_message_received when one mailbox holds nearly every row (bench/api.py's
        seed) and filters out the other mailboxes' rows, 26 ms instead of 14 for the
        phrase's 15k-row walk at 1M; the agent-led index's estimate counts it as
        random reads (a multi-column index's correlation is taken at 0.75)."""
        if self._listing_keys() != ("received_at", "id") or self.query.where.connector != "AND":
            return ()
        if self.query.where.negated:
            return ()
        table = self.model._meta.db_table
        # Lookups (lhs, lookup_name) next to nested WhereNodes: the getattr()s tell them apart.
        where_children: list[Any] = self.query.where.children
        fixed = {
            child.lhs.target.attname
            for child in where_children
            if getattr(child, "lookup_name", None) == "exact"
            and getattr(child.lhs, "alias", None) == table
            and getattr(getattr(child.lhs, "target", None), "model", None) is self.model
        }
        prefix = ("agent_id", "direction", "disposition", "archived")
        return prefix if fixed.issuperset(prefix) else ()

    def _rows_by_id(self, ids: list[str]) -> list[Any]:
        """The rows of ``ids``, in the order given (listing order), with the queryset's
        select_related, prefetches, item relations and columns."""
        if not ids:
            return []
        # By id alone, not through this queryset's filters again: a row that changed
        # since the walk (archived, read) is still part of the page the walk found, so
        # the page keeps its size and has_more stays right.
        fetch = cast("MessageQuerySet[_M]", self.model._default_manager.db_manager(self.db).filter(pk__in=ids))
        if ITEM_LABELS in self.query.annotations:
            fetch = fetch.with_item_relations()
        fetch.query.select_related = self.query.select_related
        fetch.query.deferred_loading = self.query.deferred_loading
        rows = {row.pk: row for row in fetch.prefetch_related(*self._prefetch_related_lookups)}  # type: ignore[attr-defined]  # QuerySet's own, not in the stubs
        return [rows[i] for i in ids if i in rows]

    def in_thread(self, thread_id: str) -> MessageQuerySet[_M]:
        return self.filter(thread_id=thread_id)

    def after(self, received_at: dt.datetime, message_id: str) -> MessageQuerySet[_M]:
        """Keyset pagination: strictly after (received_at, id) in listing order.

        The redundant ``received_at >= x`` is what makes this a seek: it becomes the range
        start of mail_message_agent_inbox, while the OR alone is only a filter, so a deep
        page scanned every earlier row (bench/api.py: 18,001 rows removed at 20k).
        """
        at, key = self._listing_keys()
        return self.filter(
            Q(**{f"{at}__gte": received_at})
            & (Q(**{f"{at}__gt": received_at}) | Q(**{at: received_at, f"{key}__gt": message_id}))
        )

    def up_to(self, received_at: dt.datetime, message_id: str) -> MessageQuerySet[_M]:
        """The mirror of after(): at or before (received_at, id) in listing order."""
        at, key = self._listing_keys()
        return self.filter(
            Q(**{f"{at}__lte": received_at})
            & (Q(**{f"{at}__lt": received_at}) | Q(**{at: received_at, f"{key}__lte": message_id}))
        )

    def in_listing_order(self) -> MessageQuerySet[_M]:
        return self.order_by(*self._listing_keys())

    def _listing_keys(self) -> tuple[str, str]:
        """(received_at, id), or the label row's copies of them after with_label(): the
        same values, but the seek and the sort then match mail_label_agent_name_received
        (PostgreSQL does not carry a range over from m.received_at to the joined copy)."""
        if _LABEL_AT in self.query.annotations:
            return _LABEL_AT, _LABEL_ID
        return "received_at", "id"

    def inbox_filtered(
        self,
        *,
        label: str | None = None,
        is_read: bool | None = None,
        include_archived: bool = False,
        verified_only: bool = False,
    ) -> MessageQuerySet[_M]:
        """GET /v1/inbox and /v1/inbox/unread-count: the filters that combine with AND."""
        qs = self.in_inbox()
        if not include_archived:
            qs = qs.not_archived()
        if label is not None:
            qs = qs.with_label(label, include_archived=include_archived)
        if is_read is True:
            qs = qs.read()
        elif is_read is False:
            qs = qs.unread()
        if verified_only:
            qs = qs.verified()
        return qs

    def as_items(self) -> MessageQuerySet[_M]:
        """A listing of inbox items (inbox, search, sent, thread): with_item_relations(),
        loading only the columns the item shows. The rest of a row (recipients' Bcc and
        Reply-To, references, timestamps, the agent's own columns) is two JSON decodes and
        four timestamps a row that no item shows; a message from here that is used for
        anything else loads each missing column with a query of its own."""
        return self.with_item_relations().only(*ITEM_COLUMNS)

    def with_item_relations(self) -> MessageQuerySet[_M]:
        """What ``message_item`` reads, in the one query: the agent joined, and each
        message's label names and attachments aggregated into JSON arrays by correlated
        subqueries (ITEM_LABELS, ITEM_ATTACHMENTS; NULL when there are none).

        Prefetching them instead costs two more round trips and the prefetch machinery (a
        queryset per message and relation, filled and read back), ~40 % of a
        50-item page's server time (bench/HISTORY.md, ninth session). The subqueries are
        SQL written once per database (_item_subqueries): built from ORM expressions,
        resolving and compiling them cost ~2 ms a request, more than the page's SQL."""
        labels, attachments = _item_subqueries(connections[self.db].vendor, self.model)
        items: MessageQuerySet[_M] = self.select_related("agent").annotate(
            **{
                ITEM_LABELS: RawSQL(labels, (), output_field=models.JSONField()),
                ITEM_ATTACHMENTS: RawSQL(attachments, (), output_field=models.JSONField()),
            }
        )
        return items


@functools.cache
def _item_subqueries(vendor: str, message_model: Any) -> tuple[str, str]:
    """The SQL of with_item_relations()'s two subqueries: a JSON array of the message's
    label names, and one of its attachments as objects of ITEM_ATTACHMENT_COLUMNS.
    ``json_group_array`` on SQLite nests a ``json_object`` as JSON, not as a string."""
    meta = message_model._meta
    labels = meta.get_field("labels").related_model._meta
    attachments = meta.get_field("attachments").related_model._meta
    if vendor == "postgresql":
        array, obj = "JSONB_AGG", "JSONB_BUILD_OBJECT"
    else:
        array, obj = "JSON_GROUP_ARRAY", "JSON_OBJECT"
    message_id = f'"{meta.db_table}"."{meta.pk.column}"'
    fields = ", ".join(f"'{name}', a.\"{attachments.get_field(name).column}\"" for name in ITEM_ATTACHMENT_COLUMNS)
    label_of, attachment_of = labels.get_field("message").column, attachments.get_field("message").column
    return (
        f'(SELECT {array}(l."{labels.get_field("name").column}") FROM "{labels.db_table}" l '
        f'WHERE l."{label_of}" = {message_id})',
        f'(SELECT {array}({obj}({fields})) FROM "{attachments.db_table}" a WHERE a."{attachment_of}" = {message_id})',
    )


def _matches(q: str, columns: Sequence[str]) -> Q:
    """Any of ``columns`` contains ``q`` (icontains)."""
    condition = Q()
    for col in columns:
        condition |= Q(**{f"{col}__icontains": q})
    return condition


# Joins the columns in mail_message.search_upper; never in a column's own text in practice,
# and a q that holds it is tested against the columns themselves.
_SEPARATOR = "\x01"


def _walk_test(q: str, db: str) -> Q | RawSQL:
    """The test of one walked row: ``_matches(q, SEARCH_COLUMNS)``, or on PostgreSQL the
    same test on mail_message.search_upper (migration 0006_search_mid): the four columns
    upper-cased once at write time, joined by U+0001. A pattern without U+0001 matches
    the joined text exactly where it matches one of the columns (every character of q is
    literal), and the walk then skips four UPPER()s a row, most of its cost."""
    connection = connections[db]
    if connection.vendor != "postgresql" or _SEPARATOR in q:
        return _matches(q, SEARCH_COLUMNS)
    pattern = "%" + connection.ops.prep_for_like_query(q) + "%"
    return RawSQL('"mail_message"."search_upper" LIKE UPPER(%s)', [pattern], output_field=models.BooleanField())


class MessageLabelQuerySet(models.QuerySet[_M, _M]):
    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        objs = list(objs)
        self.copy_message_keys(objs)
        return super().bulk_create(objs, *args, **kwargs)

    def copy_message_keys(self, labels: Sequence[Any]) -> None:
        """Copy each new label's message's agent, received_at and archived onto it (the
        columns of mail_label_agent_name_*). Every insert comes through here, by save() or
        bulk_create(), whoever the caller: read from the database, not from a message
        object the caller may hold stale."""
        if not labels:
            return
        message_model: Any = self.model._meta.get_field("message").related_model
        keys = {
            pk: (agent_id, received_at, archived)
            for pk, agent_id, received_at, archived in message_model.objects.using(self.db)
            .filter(pk__in={label.message_id for label in labels})
            .values_list("pk", "agent_id", "received_at", "archived")
        }
        for label in labels:
            if label.message_id in keys:  # else the insert fails on the foreign key, as it should
                label.agent_id, label.received_at, label.archived = keys[label.message_id]


class ThreadQuerySet(models.QuerySet[_M, _M]):
    """Reads of GET /v1/threads: the Thread rows of one mailbox, one method per filter."""

    def for_agent(self, agent: Any) -> ThreadQuerySet[_M]:
        return self.filter(agent=agent)

    def not_archived(self) -> ThreadQuerySet[_M]:
        return self.filter(archived=False)

    def unread(self) -> ThreadQuerySet[_M]:
        return self.filter(unread_count__gt=0)

    def read(self) -> ThreadQuerySet[_M]:
        return self.filter(unread_count=0)

    def containing(self, messages: models.QuerySet[Any, Any]) -> ThreadQuerySet[_M]:
        """The threads one of ``messages`` belongs to (a label or a search over messages)."""
        return self.filter(thread_id__in=messages.order_by().values("thread_id"))

    def before(self, last_message_at: dt.datetime, thread_id: str) -> ThreadQuerySet[_M]:
        """Keyset pagination: strictly after (last_message_at, thread_id) in activity order
        (newest first); the redundant ``<=`` makes it the range end of the index walk."""
        return self.filter(
            Q(last_message_at__lte=last_message_at)
            & (Q(last_message_at__lt=last_message_at) | Q(last_message_at=last_message_at, thread_id__lt=thread_id))
        )

    def in_activity_order(self) -> ThreadQuerySet[_M]:
        return self.order_by("-last_message_at", "-thread_id")
