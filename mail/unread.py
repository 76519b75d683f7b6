"""The database's upkeep of mail_messageunread (mail.models.MessageUnread): triggers on
mail_message, one set per engine, made by the migration that creates the table.

A message is in the table while it is unread mail an agent sees in its inbox (VISIBLE_UNREAD:
inbound, disposition inbox, not archived, not read). The triggers are its only writer, so
every path that changes one of those columns keeps it right without knowing of it: ingest's
bulk_create, the services' queryset .update(), the admin's save(), the release from hold,
the bulk archive job, a delete or a cascade from the agent. They run in the statement's own
transaction, so the table never disagrees with a committed message.

On SQLite, a migration that makes Django rebuild mail_message (``_remake_table``: a new
table, the rows copied, the old one dropped) drops its triggers with the old table: such a
migration must call ``unread_triggers_create`` again and ``unread_backfill`` after it
(tests/mail/test_message_unread.py checks that they exist at the latest migration).
"""

from __future__ import annotations

from typing import Any

TABLE = "mail_messageunread"
TRIGGERS = ("mail_message_unread_insert", "mail_message_unread_update", "mail_message_unread_delete")
# What a trigger re-reads when one of these changes: the state that decides the row and the
# row's copies of the message's keys.
_WATCHED = ("is_read", "archived", "direction", "disposition", "agent_id", "received_at")


def _visible_unread(row: str) -> str:
    return f"NOT {row}.is_read AND NOT {row}.archived AND {row}.direction = 'inbound' AND {row}.disposition = 'inbox'"


_COLUMNS = ", ".join(_WATCHED)
_OLD = ", ".join(f"OLD.{c}" for c in _WATCHED)
_NEW = ", ".join(f"NEW.{c}" for c in _WATCHED)

# One function for a row's update or delete: it leaves the table, enters it, or has its
# copies changed. The WHEN clauses keep every other write of mail_message from calling it.
_POSTGRESQL = [
    f"""
CREATE OR REPLACE FUNCTION mail_message_unread_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was boolean := TG_OP <> 'INSERT' AND ({_visible_unread("OLD")});
    is_now boolean := TG_OP <> 'DELETE' AND ({_visible_unread("NEW")});
BEGIN
    IF was AND NOT is_now THEN
        DELETE FROM {TABLE} WHERE message_id = OLD.id;
    ELSIF is_now AND NOT was THEN
        INSERT INTO {TABLE} (message_id, agent_id, received_at) VALUES (NEW.id, NEW.agent_id, NEW.received_at);
    ELSIF is_now THEN
        UPDATE {TABLE} SET agent_id = NEW.agent_id, received_at = NEW.received_at WHERE message_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$""",
    # Inserts once per statement, from the statement's rows: ingest inserts a batch of
    # mail in one bulk_create, and a row trigger cost ~3x as much per mail (40-55 us of
    # PostgreSQL's CPU against 10-16, 20k inserts under load; docs/decisions/0042).
    f"""
CREATE OR REPLACE FUNCTION mail_message_unread_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (message_id, agent_id, received_at)
        SELECT id, agent_id, received_at FROM inserted WHERE {_visible_unread("inserted")};
    RETURN NULL;
END
$$""",
    """
CREATE TRIGGER mail_message_unread_insert AFTER INSERT ON mail_message REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION mail_message_unread_inserted()""",
    f"""
CREATE TRIGGER mail_message_unread_update AFTER UPDATE OF {_COLUMNS} ON mail_message FOR EACH ROW
WHEN (({_OLD}) IS DISTINCT FROM ({_NEW})) EXECUTE FUNCTION mail_message_unread_sync()""",
    f"""
CREATE TRIGGER mail_message_unread_delete AFTER DELETE ON mail_message FOR EACH ROW
WHEN ({_visible_unread("OLD")}) EXECUTE FUNCTION mail_message_unread_sync()""",
]

# SQLite has no trigger functions: the update's two cases are one trigger each.
_SQLITE = [
    f"""
CREATE TRIGGER mail_message_unread_insert AFTER INSERT ON mail_message
WHEN {_visible_unread("NEW")}
BEGIN
    INSERT INTO {TABLE} (message_id, agent_id, received_at) VALUES (NEW.id, NEW.agent_id, NEW.received_at);
END""",
    f"""
CREATE TRIGGER mail_message_unread_update AFTER UPDATE OF {_COLUMNS} ON mail_message
BEGIN
    DELETE FROM {TABLE} WHERE message_id = OLD.id AND NOT ({_visible_unread("NEW")});
    INSERT OR REPLACE INTO {TABLE} (message_id, agent_id, received_at)
        SELECT NEW.id, NEW.agent_id, NEW.received_at WHERE {_visible_unread("NEW")};
END""",
    f"""
CREATE TRIGGER mail_message_unread_delete AFTER DELETE ON mail_message
BEGIN
    DELETE FROM {TABLE} WHERE message_id = OLD.id;
END""",
]

_DROP = {
    "postgresql": [f"DROP TRIGGER IF EXISTS {name} ON mail_message" for name in TRIGGERS]
    + ["DROP FUNCTION IF EXISTS mail_message_unread_sync()", "DROP FUNCTION IF EXISTS mail_message_unread_inserted()"],
    "sqlite": [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS],
}


def unread_triggers_create(*, schema_editor: Any) -> None:
    """Make (again) the triggers that keep mail_messageunread, on this engine."""
    vendor = schema_editor.connection.vendor
    for statement in _DROP[vendor] + {"postgresql": _POSTGRESQL, "sqlite": _SQLITE}[vendor]:
        schema_editor.execute(statement, params=None)


def unread_triggers_drop(*, schema_editor: Any) -> None:
    for statement in _DROP[schema_editor.connection.vendor]:
        schema_editor.execute(statement, params=None)


def unread_backfill(*, schema_editor: Any) -> None:
    """The table's rows from mail_message as it stands, in one statement."""
    schema_editor.execute(f"DELETE FROM {TABLE}", params=None)
    schema_editor.execute(
        f"INSERT INTO {TABLE} (message_id, agent_id, received_at) SELECT id, agent_id, received_at "
        f"FROM mail_message m WHERE {_visible_unread('m')}",
        params=None,
    )
