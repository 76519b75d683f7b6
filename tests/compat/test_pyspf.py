"""compat.pyspf: the installed pyspf is one it was checked against, the module global it
answers lookups through is still the one pyspf's checks call, and a check through it gives
the same result as stock pyspf with its own dnspython driver over the same zone."""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import pytest
import spf

from compat import pyspf
from mail.authn import DnsTemporaryError, dns_resolve

# name -> qtype -> records in zone-file text; every name here exists (NoAnswer for other types).
ZONE: dict[str, dict[str, list[str]]] = {
    "ip.example": {"TXT": ['"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"']},
    "split.example": {"TXT": ['"v=spf1 ip4:198.51.100.0/24 " "-all"', '"unrelated text"']},
    "amx.example": {
        "TXT": ['"v=spf1 a mx ~all"'],
        "A": ["203.0.113.10"],
        "AAAA": ["2001:db8::10"],
        "MX": ["10 mx1.amx.example.", "20 mx2.amx.example."],
    },
    "mx1.amx.example": {"A": ["203.0.113.21"]},
    "mx2.amx.example": {"A": ["203.0.113.22"], "AAAA": ["2001:db8::22"]},
    "inc.example": {"TXT": ['"v=spf1 include:_spf.provider.example ?all"']},
    "_spf.provider.example": {"TXT": ['"v=spf1 ip4:198.18.0.0/15 -all"']},
    "redir.example": {"TXT": ['"v=spf1 redirect=ip.example"']},
    "ptr.example": {"TXT": ['"v=spf1 ptr -all"']},
    "7.2.0.192.in-addr.arpa": {"PTR": ["host.ptr.example."]},
    "host.ptr.example": {"A": ["192.0.2.7"]},
    "exists.example": {"TXT": ['"v=spf1 exists:%{i}.allow.exists.example -all"']},
    "192.0.2.7.allow.exists.example": {"A": ["127.0.0.2"]},
    "two.example": {"TXT": ['"v=spf1 -all"', '"v=spf1 +all"']},
    "bad.example": {"TXT": ['"v=spf1 ip4:not-an-ip -all"']},
    "slowinc.example": {"TXT": ['"v=spf1 include:slow.example -all"']},
    "helo.example": {"TXT": ['"v=spf1 ip4:192.0.2.7 -all"']},
}
SLOW = {"slow.example"}


def zone_answer(name: Any, qtype: Any, **_: Any) -> list[Any]:
    """dnspython's resolve/query over ZONE: rdata objects, or its exceptions."""
    name = str(name).rstrip(".").lower()
    if name in SLOW:
        raise dns.exception.Timeout
    if name not in ZONE:
        raise dns.resolver.NXDOMAIN
    texts = ZONE[name].get(str(qtype))
    if not texts:
        raise dns.resolver.NoAnswer
    rdtype = dns.rdatatype.from_text(str(qtype))
    return [dns.rdata.from_text(dns.rdataclass.IN, rdtype, text) for text in texts]


CHECKS = [
    ("192.0.2.7", "a@ip.example", "mx.client.example"),
    ("198.51.100.9", "a@ip.example", "mx.client.example"),
    ("2001:db8::1", "a@ip.example", "mx.client.example"),
    ("198.51.100.9", "a@split.example", "h.example"),
    ("203.0.113.10", "a@amx.example", "h.example"),
    ("203.0.113.22", "a@amx.example", "h.example"),
    ("2001:db8::22", "a@amx.example", "h.example"),
    ("192.0.2.99", "a@amx.example", "h.example"),
    ("198.19.1.1", "a@inc.example", "h.example"),
    ("192.0.2.99", "a@inc.example", "h.example"),
    ("192.0.2.7", "a@redir.example", "h.example"),
    ("192.0.2.7", "a@ptr.example", "h.example"),
    ("192.0.2.8", "a@ptr.example", "h.example"),
    ("192.0.2.7", "a@exists.example", "h.example"),
    ("192.0.2.8", "a@exists.example", "h.example"),
    ("192.0.2.7", "a@two.example", "h.example"),
    ("192.0.2.7", "a@bad.example", "h.example"),
    ("192.0.2.7", "a@slowinc.example", "h.example"),
    ("192.0.2.7", "a@nowhere.example", "h.example"),
    ("192.0.2.7", "", "helo.example"),
]


def test_the_installed_pyspf_is_one_the_adaptation_was_checked_against() -> None:
    installed = importlib.metadata.version("pyspf")
    assert installed in pyspf.CHECKED_VERSIONS, (
        f"pyspf {installed} is installed, but compat/pyspf.py was checked against {pyspf.CHECKED_VERSIONS}: "
        "re-check what its docstring lists (the module global DNSLookup that query.dns calls with "
        "(name, qtype, strict, timeout), the drivers' answer shape, TempError), run tests/compat/test_pyspf.py "
        "and tests/mail/test_authn.py, then add the version to CHECKED_VERSIONS."
    )


def test_pyspfs_checks_still_look_up_through_the_module_global() -> None:
    assert "DNSLookup(name, qtype, self.strict, timeout)" in inspect.getsource(spf.query.dns)
    assert list(inspect.signature(spf.DNSLookup_dnspython).parameters) == ["name", "qtype", "tcpfallback", "timeout"]


@pytest.mark.parametrize(("ip", "mail_from", "helo"), CHECKS)
def test_a_check_through_it_answers_as_stock_pyspf(
    monkeypatch: pytest.MonkeyPatch, ip: str, mail_from: str, helo: str
) -> None:
    monkeypatch.setattr(dns.resolver, "query", zone_answer)  # pyspf's driver
    monkeypatch.setattr(dns.resolver, "resolve", zone_answer)  # mail.authn.dns_resolve
    sender = mail_from or f"postmaster@{helo}"

    ours = pyspf.check(
        ip=ip, mail_from=sender, helo=helo, resolve=dns_resolve, temporary=DnsTemporaryError, querytime=20
    )
    stock, _ = spf.check2(i=ip, s=sender, h=helo, querytime=20)

    assert ours == stock
    assert spf.DNSLookup.compat_dispatcher  # stock ran through the dispatcher, outside a check


def test_outside_a_check_lookups_reach_pyspfs_own_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dns.resolver, "query", zone_answer)
    pyspf.check(
        ip="192.0.2.7", mail_from="a@ip.example", helo="h", resolve=dns_resolve, temporary=Exception, querytime=5
    )

    assert spf.DNSLookup("split.example", "TXT") == spf.DNSLookup_dnspython("split.example", "TXT")
