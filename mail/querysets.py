"""Reads of the mailbox: one method per API filter, named after it.

Every agent-facing read starts from ``Message.objects.for_agent(agent)`` so that scope
cannot be forgotten.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from django.db import connections, models
from django.db.models import F, FilteredRelation, OuterRef, Q, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Upper

from mail.items import ITEM_COLUMNS, ITEM_RELATED
from mail.search import SEARCH_COLUMNS, SEARCH_SEPARATOR, Flag, search_compile, search_parse

# The alias of the label row that with_label() joins: after() and in_listing_order() seek
# and sort on its copies of (received_at, message_id), the order of
# mail_label_agent_name_received.
_LABEL = "listed_label"
_LABEL_AT, _LABEL_ID = "listed_label_received_at", "listed_label_message_id"

# The alias of the narrow table's row that unread_in_inbox() joins (MessageUnread), and
# its copies of (received_at, message_id), the order of mail_unread_agent_received.
_UNREAD = "listed_unread"
_UNREAD_AT, _UNREAD_ID = "listed_unread_received_at", "listed_unread_message_id"

# The terms of q that ask for exactly the unread mail (mail.search), as (node, negated).
_UNREAD_TERMS = ((Flag("is:unread"), False), (Flag("is:read"), True))

# What for_agent() and inbox_filtered() mark when they fix the leading columns of
# mail_message_agent_inbox to one value each (in_listing_order()), and those columns.
_AGENT, _INBOX = "listed_agent", "listed_inbox"
_INBOX_PREFIX = ("agent_id", "direction", "disposition", "archived")

# The model is bound where each queryset becomes a manager (mail.models), which this module
# cannot import: models imports it.
_M = TypeVar("_M", bound=models.Model)


class MessageQuerySet(models.QuerySet[_M, _M]):
    def for_agent(self, agent: Any) -> MessageQuerySet[_M]:
        # alias() with ** names: the stubs' plugin cannot follow them (Any).
        scoped: MessageQuerySet[_M] = self.filter(agent=agent).alias(**{_AGENT: Value(True)})
        return scoped

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

    def unread_in_inbox(self) -> MessageQuerySet[_M]:
        """Unread inbound mail of the inbox, not archived: the messages with a row in the
        narrow table MessageUnread (mail.unread), joined as with_label() joins the label
        rows, on its copy of the agent. PostgreSQL then walks one mailbox's unread rows in
        mail_unread_agent_received from the cursor, in listing order, and probes
        mail_message by primary key once per row until the page is full: is_read is in no
        index of mail_message (so that flipping it can be a HOT update)."""
        # alias() with ** names: the stubs' plugin cannot follow them (Any).
        unread: MessageQuerySet[_M] = self.alias(
            **{
                _UNREAD: FilteredRelation("unread_row", condition=Q(unread_row__agent=F("agent"))),
                _UNREAD_AT: F(f"{_UNREAD}__received_at"),
                _UNREAD_ID: F(f"{_UNREAD}__message_id"),
            }
        ).filter(**{f"{_UNREAD_ID}__isnull": False})
        return unread

    def only_unread(self) -> MessageQuerySet[_M]:
        """The unread mail of this listing: ``?is_read=false`` and ``q=is:unread`` alike.
        On the inbox without archived mail (inbox_filtered) and no label join, the page
        walks the unread table (unread_in_inbox), not every read row of the mailbox;
        elsewhere (archived mail is not in MessageUnread; a label's page walks the label
        rows) it tests is_read. Never both: the same test on mail_message as well would
        make PostgreSQL expect a handful of rows and read them all from another index
        first."""
        marks = self.query.annotations
        if _UNREAD_AT in marks:
            return self
        if _INBOX in marks and _LABEL_AT not in marks:
            return self.unread_in_inbox()
        return self.unread()

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
        """Messages matching ``q`` in the search grammar (mail.search; raises InvalidQuery).
        A bare term is the guide's: a substring of any of SEARCH_COLUMNS (_bare_term)."""
        terms = search_parse(q)
        vendor = connections[self.db].vendor
        # The terms are ANDed: is:unread (or -is:read) among them is only_unread(), so that
        # the page walks the unread table where ?is_read=false would.
        rest = [t for t in terms if (t.node, t.negated) not in _UNREAD_TERMS]
        found = self.filter(search_compile(rest, model=self.model, vendor=vendor, text=_bare_term))
        return found.only_unread() if len(rest) < len(terms) else found

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
        """Sorted by (received_at, id); after inbox_filtered() without archived mail, by
        the leading columns of mail_message_agent_inbox first. Each of those is one value
        there, so the order is the same, but the sort then names the index to walk: when
        one mailbox holds most rows, PostgreSQL otherwise walks mail_message_received and
        filters out the other mailboxes' rows (a search for a term in 0.1 % of 100k
        messages: 58 ms instead of 37)."""
        marks = self.query.annotations
        joined = _LABEL_AT in marks or _UNREAD_AT in marks
        prefix = _INBOX_PREFIX if _AGENT in marks and _INBOX in marks and not joined else ()
        return self.order_by(*prefix, *self._listing_keys())

    def _listing_keys(self) -> tuple[str, str]:
        """(received_at, id), or the label row's copies of them after with_label(), or the
        unread row's after unread_in_inbox(): the same values, but the seek and the sort then
        match the joined table's index (PostgreSQL does not carry a range over from
        m.received_at to the joined copy)."""
        if _LABEL_AT in self.query.annotations:
            return _LABEL_AT, _LABEL_ID
        if _UNREAD_AT in self.query.annotations:
            return _UNREAD_AT, _UNREAD_ID
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
            # Marks the leading columns of mail_message_agent_inbox as fixed (in_listing_order).
            qs = qs.not_archived().alias(**{_INBOX: Value(True)})
        if label is not None:
            qs = qs.with_label(label, include_archived=include_archived)
        if is_read is True:
            qs = qs.read()
        elif is_read is False:
            qs = qs.only_unread()
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
        subqueries (mail.items.ITEM_RELATED; NULL when there are none).

        A speed-up over prefetch_related (two more round trips and the prefetch
        machinery: 1.7-2.6x slower for a page of 50), with its measurement and how to
        remove it in docs/decisions/0040-item-sql.md. The subqueries are SQL built once
        per database from the field table (_item_subqueries): built from ORM expressions,
        resolving and compiling them cost ~2 ms a request, more than the page's SQL."""
        subqueries = _item_subqueries(connections[self.db].vendor, self.model)
        items: MessageQuerySet[_M] = self.select_related("agent").annotate(
            **{attr: RawSQL(sql, (), output_field=models.JSONField()) for attr, sql in subqueries}
        )
        return items


@functools.cache
def _item_subqueries(vendor: str, message_model: Any) -> tuple[tuple[str, str], ...]:
    """(annotation, SQL) of with_item_relations()'s subqueries, one per related table of
    the item (mail.items.ITEM_RELATED): a JSON array of the rows' one column, or of
    objects of their columns. ``json_group_array`` on SQLite nests a ``json_object`` as
    JSON, not as a string."""
    meta = message_model._meta
    array, obj = ("JSONB_AGG", "JSONB_BUILD_OBJECT") if vendor == "postgresql" else ("JSON_GROUP_ARRAY", "JSON_OBJECT")
    message_id = f'"{meta.db_table}"."{meta.pk.column}"'
    out = []
    for related in ITEM_RELATED:
        reverse = meta.get_field(related.relation)
        rel = reverse.related_model._meta
        columns = {name: f'r."{rel.get_field(name).column}"' for name in related.columns}
        if len(columns) == 1:
            value = next(iter(columns.values()))
        else:
            pairs = ", ".join(f"'{name}', {column}" for name, column in columns.items())
            value = f"{obj}({pairs})"
        of = reverse.field.column
        out.append((related.attr, f'(SELECT {array}({value}) FROM "{rel.db_table}" r WHERE r."{of}" = {message_id})'))
    return tuple(out)


def _bare_term(term: str) -> Q:
    """``search_upper LIKE '%' || UPPER(term) || '%'``: both sides upper-cased by the
    database, as icontains would compare each column, and ``contains`` escapes %, _ and \\
    so they match literally. PostgreSQL's planner chooses per term: a rare term from the
    trigram index on search_upper (every match, then sorted), a common one by walking the
    listing index and testing each row until the page is full."""
    if SEARCH_SEPARATOR in term:
        return _matches(term, SEARCH_COLUMNS)
    return Q(search_upper__contains=Upper(Value(term)))


def _matches(q: str, columns: Sequence[str]) -> Q:
    """Any of ``columns`` contains ``q`` (icontains)."""
    condition = Q()
    for col in columns:
        condition |= Q(**{f"{col}__icontains": q})
    return condition


# The columns a label row copies from its message, by the same name on both.
_LABEL_COPIES = ("agent_id", "received_at", "archived")


class MessageLabelQuerySet(models.QuerySet[_M, _M]):
    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        objs = list(objs)
        self.copy_message_keys(objs)
        return super().bulk_create(objs, *args, **kwargs)

    def copy_message_keys(self, labels: Sequence[Any] | None = None) -> None:
        """The one writer of the label rows' copies of their message's agent, received_at
        and archived (the columns of mail_label_agent_name_*), always read from the message
        rows in the database, never from a message object the caller may hold stale:

        - ``labels`` given: new rows, before their INSERT. Every insert comes through here,
          by save() or bulk_create(), whoever the caller.
        - none given: UPDATE this queryset's rows from their messages, in one statement;
          whoever changes one of the three on a message calls it in the same transaction
          (services.message_archive_set, the one writer of Message.archived).
        """
        message_model: Any = self.model._meta.get_field("message").related_model
        if labels is None:
            message = message_model.objects.using(self.db).filter(pk=OuterRef("message_id"))
            self.update(**{key: Subquery(message.values(key)[:1]) for key in _LABEL_COPIES})
            return
        if not labels:
            return
        keys = {
            row[0]: row[1:]
            for row in message_model.objects.using(self.db)
            .filter(pk__in={label.message_id for label in labels})
            .values_list("pk", *_LABEL_COPIES)
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
