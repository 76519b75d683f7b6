"""assmbl/parsers.py, the API's JSON parser: deep nesting and lone surrogates are 400s with
the envelope on every JSON endpoint, never a 500 (issue 21, item 7)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from assmbl.parsers import MAX_JSON_DEPTH, json_depth_check
from mail.models import Message
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import error_code
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

# (method, path template, who): every /v1 endpoint that reads a JSON body.
JSON_ENDPOINTS = [
    ("post", "/v1/send", "agent"),
    ("patch", "/v1/messages/{message}/labels", "agent"),
    ("patch", "/v1/messages/{message}/read", "agent"),
    ("patch", "/v1/messages/{message}/archive", "agent"),
    ("post", "/v1/messages/{message}/reply", "agent"),
    ("post", "/v1/messages/{message}/forward", "agent"),
    ("post", "/v1/attachments", "agent"),
    ("post", "/v1/webhooks", "agent"),
    ("patch", "/v1/webhooks/{webhook}", "agent"),
    ("post", "/v1/webhooks/{webhook}/replay", "agent"),
    ("post", "/v1/agents", "operator"),
    ("patch", "/v1/agents/owner", "operator"),
    ("post", "/v1/directory/senders", "agent"),
]


def _call(
    settings: Any, owner: Any, operator: APIClient, method: str, template: str, who: str, body: str | bytes
) -> Any:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    message = MessageFactory(agent=owner.agent)
    webhook = endpoint_create(account=owner.agent.account, created_by=owner.agent, url="http://127.0.0.1:9/hook")
    client = owner.client if who == "agent" else operator
    path = template.format(message=message.id, webhook=webhook.id)
    return getattr(client, method)(path, body, content_type="application/json")


@pytest.mark.parametrize(("method", "template", "who"), JSON_ENDPOINTS)
def test_it_answers_100000_open_brackets_with_400_invalid_json(
    settings: Any, owner: Any, operator: APIClient, method: str, template: str, who: str
) -> None:
    response = _call(settings, owner, operator, method, template, who, "[" * 100_000)
    assert response.status_code == 400, response.content
    assert error_code(response) == "invalid_json"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in response.json()["error"]["message"]


@pytest.mark.parametrize(("method", "template", "who"), JSON_ENDPOINTS)
def test_it_answers_a_lone_surrogate_with_400_naming_the_field(
    settings: Any, owner: Any, operator: APIClient, method: str, template: str, who: str
) -> None:
    response = _call(settings, owner, operator, method, template, who, '{"subject": "Hi \\ud800"}')
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert response.json()["error"]["details"] == {"subject": [_SURROGATE_MESSAGE]}


_SURROGATE_MESSAGE = "A lone UTF-16 surrogate (an escape such as \\ud800 without its pair) is not Unicode text."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "bob@example.com", "subject": "\\ud800", "body": "x"}, "subject"),
        ({"to": "bob@example.com", "subject": "s", "body": "a \\udfff b"}, "body"),
        ({"to": "bob@example.com", "subject": "s", "html": "<p>\\udc00</p>"}, "html"),
        ({"to": "bob@example.com", "subject": "s", "body": "x", "headers": {"X-Tag": "\\ud83d"}}, "headers.X-Tag"),
        ({"to": "bob@example.com", "subject": "s", "body": "x", "headers": {"X-\\ud800": "v"}}, "headers.X-\\ud800"),
        ({"to": ["bob@example.com", "\\ud800@example.com"], "subject": "s", "body": "x"}, "to[1]"),
    ],
)
def test_a_send_with_a_lone_surrogate_is_400_and_nothing_is_sent(owner: Any, body: dict[str, Any], field: str) -> None:
    raw = json.dumps(body).replace("\\\\u", "\\u")  # the escape itself, as a client would write it
    response = owner.client.post("/v1/send", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert list(response.json()["error"]["details"]) == [field]
    assert not Message.objects.exists()


def test_a_label_with_a_lone_surrogate_is_400_and_the_message_keeps_its_labels(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    assert owner.client.patch(f"/v1/messages/{message.id}/labels", {"add": ["keep"]}, format="json").status_code == 200
    response = owner.client.patch(
        f"/v1/messages/{message.id}/labels", '{"add": ["ok", "bad \\udc00"]}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"add[1]": [_SURROGATE_MESSAGE]}
    assert message.label_names == ["keep"]


def test_a_surrogate_pair_written_as_escapes_is_text_and_is_accepted(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = owner.client.patch(
        f"/v1/messages/{message.id}/labels", '{"add": ["rocket \\ud83d\\ude80"]}', content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert "rocket \U0001f680" in response.json()["Labels"]


def test_a_backslash_before_u_d800_is_plain_text_not_a_surrogate(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = owner.client.patch(
        f"/v1/messages/{message.id}/labels", '{"add": ["C:\\\\ud800"]}', content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert "C:\\ud800" in response.json()["Labels"]


def test_nesting_up_to_the_limit_is_judged_on_its_content(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    response = owner.client.patch(
        f"/v1/messages/{message.id}/labels", '{"add": ' + nested + "}", content_type="application/json"
    )
    assert response.status_code == 400
    assert error_code(response) != "invalid_json"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    json_depth_check(json.dumps({"body": "[" * 10_000 + "{" * 10_000, "html": '\\"]]]' * 1000}))


@pytest.mark.parametrize(
    "text",
    [
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
        "{" + '"a": [' * MAX_JSON_DEPTH + "1" + "]" * MAX_JSON_DEPTH + "}",
        '["\\\\", ' * (MAX_JSON_DEPTH + 1) + "1" + "]" * (MAX_JSON_DEPTH + 1),
        '"\\\\"' + "[" * 100_000,
    ],
)
def test_it_counts_nesting_outside_strings_only(text: str) -> None:
    with pytest.raises(ParseError, match="deeper than"):
        json_depth_check(text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH,
        '["\\"[[[[", ' * 60 + "1" + "]" * 60,
        json.dumps([{"a": "x" * 80, "b": [1, 2]} for _ in range(10_000)]),
    ],
)
def test_nesting_up_to_the_limit_passes_the_scan(text: str) -> None:
    json_depth_check(text)


def test_a_megabyte_of_json_is_scanned_in_a_fraction_of_its_decoding_time() -> None:
    text = json.dumps([{"a": "x" * 80, "b": [1, 2], "c": '"[{' * 5} for _ in range(10_000)])
    started = time.perf_counter()
    json_depth_check(text)
    scanned = time.perf_counter() - started
    started = time.perf_counter()
    json.loads(text)
    decoded = time.perf_counter() - started
    assert scanned < 4 * decoded + 0.01, (scanned, decoded)  # a Python loop over tokens was 10x


def test_invalid_utf8_is_400_invalid_json(owner: Any) -> None:
    response = owner.client.post("/v1/send", b'{"subject": "\xff"}', content_type="application/json")
    assert response.status_code == 400
    assert error_code(response) == "invalid_json"
