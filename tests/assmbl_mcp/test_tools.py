"""The tools end to end, over stdio (the installed ``assmbl-mcp``) and streamable HTTP: the
official ``mcp`` client calls them for two live agents."""

from __future__ import annotations

import time
from typing import Any

import anyio
from django.conf import settings
from mcp import Client
from mcp.types import CallToolResult

from tests.assmbl_mcp.conftest import Connect
from tests.sdk.conftest import LiveAgent

TOOLS = {
    "list_inbox",
    "get_message",
    "send_message",
    "reply_to_message",
    "forward_message",
    "update_message",
    "list_threads",
    "get_thread",
    "wait_for_message",
    "get_attachment_text",
    "create_draft",
    "send_draft",
    "cancel_message",
}


async def call(session: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def test_it_lists_the_tools_of_the_contract_with_descriptions_and_schemas(
    connect: Connect, live_agent: LiveAgent
) -> None:
    async def scenario() -> list[Any]:
        async with connect(live_agent) as session:
            return (await session.list_tools()).tools

    tools = anyio.run(scenario)

    assert {tool.name for tool in tools} == TOOLS
    assert all(tool.description and tool.output_schema for tool in tools)
    wait = next(tool for tool in tools if tool.name == "wait_for_message")
    assert wait.input_schema["properties"]["timeout_seconds"]["maximum"] == 300


def test_an_agent_waits_for_a_mail_another_sends_reads_its_code_and_replies(
    connect: Connect, live_agent: LiveAgent, other_agent: LiveAgent
) -> None:
    async def scenario() -> tuple[dict[str, Any], ...]:
        async with connect(live_agent) as alice, connect(other_agent) as bob:
            waited: dict[str, Any] = {}

            async def wait() -> None:
                waited.update(await call(bob, "wait_for_message", q="verification", timeout_seconds=20))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.sleep(1.0)
                sent = await call(
                    alice,
                    "send_message",
                    to=[other_agent.address],
                    subject="Your verification code",
                    body="Your code is 482913. It expires in 10 minutes.",
                )
            read = await call(bob, "get_message", message_id=waited["message"]["MessageID"])
            replied = await call(bob, "reply_to_message", message_id=read["MessageID"], body="Thanks, got it.")
            inbox = await call(alice, "list_inbox", q="verification", limit=10)
            return sent, waited, read, replied, inbox

    sent, waited, read, replied, inbox = anyio.run(scenario)

    assert sent["Status"] in ("queued", "sent") and sent["MessageID"].startswith("msg_")
    assert waited["timed_out"] is False and waited["message"]["Subject"] == "Your verification code"
    assert list(read)[:6] == ["PromptText", "ExtractedText", "Codes", "Links", "Safety", "Attachments"]
    assert read["Codes"] == ["482913"] and "<untrusted_email>" in read["PromptText"]
    assert "raw_mime" not in read
    assert replied["MessageID"] != read["MessageID"]
    assert [item["Subject"] for item in inbox["items"]] == ["Re: Your verification code"]
    assert inbox["has_more"] is False


def test_a_refused_call_is_a_tool_error_with_the_api_code_and_message(connect: Connect, live_agent: LiveAgent) -> None:
    async def scenario() -> CallToolResult:
        async with connect(live_agent) as session:
            return await session.call_tool("get_message", {"message_id": "msg_doesnotexist"})

    result = anyio.run(scenario)

    assert result.is_error is True
    error = result.structured_content["error"]  # type: ignore[index]
    assert error["code"] == "message_not_found" and error["status"] == 404 and error["message"]
    assert result.content[0].text == f"message_not_found: {error['message']}"  # type: ignore[union-attr]


def test_a_wait_with_no_matching_mail_times_out_with_a_cursor_to_resume(
    connect: Connect, live_agent: LiveAgent, receive: Any
) -> None:
    receive(live_agent, subject="An old verification mail")
    # The event log shows an event once it is older than the visibility lag (PostgreSQL):
    # until then a mail from just before the call cannot be told from one just after it.
    time.sleep(settings.WEBHOOKS_EVENTS_VISIBILITY_LAG_MS / 1000 + 0.2)

    async def scenario() -> tuple[dict[str, Any], float]:
        async with connect(live_agent) as session:
            started = anyio.current_time()
            waited = await call(session, "wait_for_message", q="verification", timeout_seconds=2)
            return waited, anyio.current_time() - started

    waited, took = anyio.run(scenario)

    # The mail that was there before the call is not new: the wait times out.
    assert waited["timed_out"] is True and waited["message"] is None and waited["cursor"]
    assert 1.5 <= took < 10


def test_the_mailbox_tools_label_archive_read_threads_forward_and_attachments(
    http: Connect, live_agent: LiveAgent, receive: Any
) -> None:
    receive(live_agent, subject="Prices", attachments=[("prices.csv", "text/csv", b"item,price\nwidget,3\n")])

    async def scenario() -> dict[str, Any]:
        async with http(live_agent) as session:
            item = (await call(session, "list_inbox", limit=1))["items"][0]
            found: dict[str, Any] = {"item": item}
            found["labelled"] = await call(
                session, "update_message", message_id=item["MessageID"], add_labels=["prices"], is_read=True
            )
            found["archived"] = await call(session, "update_message", message_id=item["MessageID"], archived=True)
            found["inbox"] = await call(session, "list_inbox")
            found["nothing"] = await session.call_tool("update_message", {"message_id": item["MessageID"]})
            found["thread"] = await call(session, "get_thread", thread_id=item["ThreadID"])
            attachment = item["Attachments"][0]["AttachmentID"]
            found["csv"] = await call(
                session, "get_attachment_text", message_id=item["MessageID"], attachment_id=attachment
            )
            found["forwarded"] = await call(
                session, "forward_message", message_id=item["MessageID"], to=["boss@example.com"], body="FYI"
            )
            return found

    found = anyio.run(scenario)

    assert found["labelled"]["Labels"] == ["prices"] and found["labelled"]["IsRead"] is True
    assert found["archived"]["Archived"] is True and found["inbox"]["items"] == []
    assert found["nothing"].is_error and found["nothing"].structured_content["error"]["code"] == "invalid_arguments"
    assert [m["Subject"] for m in found["thread"]["items"]] == ["Prices"]
    assert "widget" in found["csv"]["Text"] and found["csv"]["Truncated"] is False
    assert found["forwarded"]["Status"] in ("queued", "sent")


def test_list_threads_pages_the_conversations(http: Connect, live_agent: LiveAgent, receive: Any) -> None:
    receive(live_agent, subject="One thread")

    async def scenario() -> CallToolResult:
        async with http(live_agent) as session:
            return await session.call_tool("list_threads", {"limit": 10})

    result = anyio.run(scenario)

    assert not result.is_error, result.content
    assert [t["Subject"] for t in result.structured_content["items"]] == ["One thread"]  # type: ignore[index]


def test_a_draft_is_created_sent_and_a_sent_message_cannot_be_canceled(http: Connect, live_agent: LiveAgent) -> None:
    async def scenario() -> tuple[CallToolResult, ...]:
        async with http(live_agent) as session:
            draft = await session.call_tool("create_draft", {"to": ["x@example.com"], "subject": "D", "body": "Hi"})
            draft_id = draft.structured_content["DraftID"]  # type: ignore[index]
            sent = await session.call_tool("send_draft", {"draft_id": draft_id})
            message_id = sent.structured_content["MessageID"]  # type: ignore[index]
            canceled = await session.call_tool("cancel_message", {"message_id": message_id})
            return draft, sent, canceled

    results = anyio.run(scenario)

    draft, sent, canceled = results
    assert not draft.is_error and not sent.is_error, (draft.content, sent.content)
    assert sent.structured_content["Status"] in ("queued", "sent")  # type: ignore[index]
    # The local transport hands it over at once: too late to cancel.
    assert canceled.is_error and canceled.structured_content["error"]["code"] == "already_sent"  # type: ignore[index]


def test_a_reply_all_draft_starts_with_the_replys_recipients_and_subject(
    http: Connect, live_agent: LiveAgent, receive: Any
) -> None:
    receive(live_agent, subject="Offsite", headers={"Cc": "carol@example.com"})

    async def scenario() -> dict[str, Any]:
        async with http(live_agent) as session:
            item = (await call(session, "list_inbox", limit=1))["items"][0]
            return await call(
                session, "create_draft", in_reply_to=item["MessageID"], reply_all=True, body="Count me in."
            )

    draft = anyio.run(scenario)

    assert [a.rpartition("<")[2].rstrip(">") for a in draft["To"]] == ["alice@example.com"]
    assert draft["Cc"] == ["carol@example.com"]
    assert draft["Subject"] == "Re: Offsite" and draft["InReplyTo"]
