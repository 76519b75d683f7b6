"""The inbox item's field table (mail.items) drives the item, the columns a listing loads
and the OpenAPI schema: each says the same fields, down to an attachment's."""

from __future__ import annotations

from typing import Any

import pytest

from mail.items import ITEM_COLUMNS, ITEM_FIELDS
from mail.models import Message, MessageLabel
from tests.mail.inbox_helpers import receive

pytestmark = pytest.mark.django_db


def _component(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rpartition("/")[2]]
    if "allOf" in node:
        return _component(schema, node["allOf"][0])
    return node


def _undocumented(schema: dict[str, Any], node: dict[str, Any], value: Any, at: str) -> list[str]:
    """Where ``value`` has a key that ``node`` (a schema) does not document, or lacks one
    it requires."""
    node = _component(schema, node)
    if isinstance(value, list) and node.get("type") == "array":
        return [bad for item in value for bad in _undocumented(schema, node["items"], item, f"{at}[]")]
    if not isinstance(value, dict) or "properties" not in node:
        return []
    documented = set(node["properties"])
    bad = [f"{at}.{key}: not documented" for key in sorted(set(value) - documented)]
    bad += [
        f"{at}.{key}: documented as required, missing" for key in sorted(set(node.get("required", [])) - set(value))
    ]
    for key in sorted(set(value) & documented):
        bad += _undocumented(schema, node["properties"][key], value[key], f"{at}.{key}")
    return bad


def test_the_schema_documents_every_field_of_an_item_and_of_its_attachments(owner: Any, deliver: Any) -> None:
    message = receive(deliver, owner, subject="Invoice", attachments=[("a.txt", "text/plain", b"hi")])
    MessageLabel.objects.create(message=message, name="x")
    schema = owner.client.get("/v1/schema?format=json").json()
    [item] = owner.client.get("/v1/inbox").json()["items"]
    assert item["Attachments"] and item["Labels"] == ["x"]
    page = schema["paths"]["/v1/inbox"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    item_schema = _component(schema, page)["properties"]["items"]["items"]
    assert _undocumented(schema, item_schema, item, "item") == []


def test_an_item_has_the_fields_of_the_table_in_its_order(owner: Any, deliver: Any) -> None:
    receive(deliver, owner, subject="Invoice")
    [item] = owner.client.get("/v1/inbox").json()["items"]
    assert list(item) == [field.name for field in ITEM_FIELDS]


def test_a_listing_loads_the_columns_the_table_names(owner: Any, deliver: Any) -> None:
    receive(deliver, owner, subject="Invoice")
    message = Message.objects.for_agent(owner.agent).as_items().get()
    loaded = set(message.__dict__) & {field.attname for field in Message._meta.concrete_fields}
    assert loaded == {column.replace("agent__agent_id", "agent_id") for column in ITEM_COLUMNS}
