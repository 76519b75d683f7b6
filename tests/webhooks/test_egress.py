"""The SSRF guard: every refused form is refused before any connection is attempted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.webhooks.conftest import Receiver, Reply
from webhooks.egress import UnsafeUrl, egress_request, url_check

PUBLIC_V4 = "93.184.216.34"


def _stub(answers: dict[str, list[str]]) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


UNSAFE = [
    "http://127.0.0.1/",
    "http://127.9.9.9:8080/x",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::10.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:c0a8:101::1]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0x0a.0.0.1/",
    "http://012.1/",
    "https://127.0.0.1/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:pw@example.com/",
    "http:///nohost",
    "http://localhost/",
    "http://internal.example/",
    "http://mixed.example/",
]

RESOLVER = _stub(
    {
        "localhost": ["127.0.0.1", "::1"],
        "internal.example": ["10.1.2.3"],
        # Any private answer among public ones refuses the whole host.
        "mixed.example": [PUBLIC_V4, "192.168.0.10"],
        "example.com": [PUBLIC_V4],
    }
)


@pytest.mark.parametrize("url", UNSAFE)
def test_it_refuses_a_non_global_target_without_connecting(url: str, connections: list[Any], settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    with pytest.raises(UnsafeUrl):
        egress_request("POST", url, content=b"{}", resolver=RESOLVER)
    assert connections == []


def test_it_refuses_a_rebinding_host_at_delivery_after_it_passed_registration(connections: list[Any]) -> None:
    answers = iter([[PUBLIC_V4], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    assert url_check("http://rebind.example/hook", resolver=rebinding).address == PUBLIC_V4
    with pytest.raises(UnsafeUrl):
        egress_request("POST", "http://rebind.example/hook", resolver=rebinding)
    assert connections == []


def test_it_resolves_once_and_connects_to_the_pinned_address(receiver: Receiver, connections: list[Any]) -> None:
    calls: list[str] = []

    def once_then_private(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["10.0.0.1"]

    response = egress_request("POST", f"http://hooks.test:{receiver.port}/x", content=b"{}", resolver=once_then_private)

    assert response.status_code == 200
    assert calls == ["hooks.test"]
    assert [a[0] for a in connections] == ["127.0.0.1"]
    assert receiver.requests[0].headers["host"] == f"hooks.test:{receiver.port}"


def test_it_does_not_follow_a_redirect(receiver: Receiver, connections: list[Any]) -> None:
    receiver.script = [Reply(302, {"Location": "http://10.0.0.1/admin"})]

    response = egress_request("POST", receiver.url(), content=b"{}")

    assert response.status_code == 302
    assert len(receiver.requests) == 1
    assert [a[0] for a in connections] == ["127.0.0.1"]


def test_it_allows_loopback_only_with_the_setting(settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    assert url_check("http://127.0.0.1:9/").address == "127.0.0.1"
    assert url_check("http://[::1]:9/").address == "::1"
    with pytest.raises(UnsafeUrl):
        url_check("http://10.0.0.1/")
    with pytest.raises(UnsafeUrl):
        url_check("http://169.254.169.254/")


def test_it_accepts_public_addresses_without_connecting(connections: list[Any]) -> None:
    assert url_check("https://example.com/hook", resolver=RESOLVER).address == PUBLIC_V4
    assert url_check("http://[2606:4700:4700::1111]/").address == "2606:4700:4700::1111"
    assert connections == []


def test_it_bounds_a_hanging_receiver_by_the_timeout(receiver: Receiver) -> None:
    receiver.script = [Reply(200, delay=2.0)]
    with pytest.raises(httpx.TimeoutException):
        egress_request("POST", receiver.url(), content=b"{}", timeout=0.3)
