"""The local SPF/DKIM checks and alignment (mail.authn), with DNS served from a dict."""

from __future__ import annotations

from typing import Any

import pytest

from mail import authn
from mail.authn import (
    aligned_for,
    authentication_check,
    authentication_normalise,
    dkim_check,
    organisational_domain,
    resolver,
    spf_check,
)
from tests.mime import build_mail


def test_it_verifies_a_dkim_signed_message_with_the_injected_resolver(signed_by: Any) -> None:
    raw = signed_by(build_mail(to="owner@agents.localhost", sender="alice@example.com"), "example.com")

    assert dkim_check(raw) == ("pass", ["example.com"])


def test_it_fails_dkim_when_the_body_was_changed_after_signing(signed_by: Any) -> None:
    raw = signed_by(build_mail(to="owner@agents.localhost", sender="alice@example.com", body="pay 10"), "example.com")

    assert dkim_check(raw.replace(b"pay 10", b"pay 99")) == ("fail", [])


def test_it_fails_dkim_when_the_key_is_not_published(dkim_key: Any, fake_dns: Any) -> None:
    raw = dkim_key.sign(build_mail(to="owner@agents.localhost"), domain="example.com")

    assert dkim_check(raw) == ("fail", [])


def test_it_reports_no_dkim_for_unsigned_mail(fake_dns: Any) -> None:
    assert dkim_check(build_mail(to="owner@agents.localhost")) == ("none", [])


def test_it_passes_spf_for_an_authorised_ip(fake_dns: Any) -> None:
    fake_dns.add("example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")

    assert spf_check(ip="192.0.2.7", mail_from="alice@example.com", helo="mx.example.com") == ("pass", "example.com")
    assert spf_check(ip="198.51.100.1", mail_from="alice@example.com", helo="mx.example.com") == ("fail", "example.com")


def test_it_reports_temperror_when_dns_times_out(fake_dns: Any) -> None:
    fake_dns.failing.add("slow.example")

    assert spf_check(ip="192.0.2.7", mail_from="a@slow.example", helo="h")[0] == "temperror"


def test_it_aligns_by_organisational_domain() -> None:
    assert organisational_domain("mail.eu.example.com") == "example.com"
    assert organisational_domain("mail.example.co.uk") == "example.co.uk"
    auth = {"dkim": "pass", "dkim_domains": ["mail.example.com"], "spf": "none", "spf_domain": ""}
    assert aligned_for(auth, "alice@example.com")
    assert not aligned_for(auth, "alice@example.org")
    assert not aligned_for({"dkim": "pass", "dkim_domains": ["co.uk"], "spf": "none"}, "ceo@bank.co.uk")


def test_it_does_not_align_an_spf_pass_for_another_domain(fake_dns: Any) -> None:
    fake_dns.add("attacker.test", "TXT", "v=spf1 ip4:203.0.113.5 -all")
    raw = build_mail(to="owner@agents.localhost", sender="ceo@example.com")

    auth = authentication_check(raw=raw, peer_ip="203.0.113.5", helo="attacker.test", mail_from="x@attacker.test")

    assert auth["spf"] == "pass" and auth["spf_domain"] == "attacker.test"
    assert auth["aligned"] is False and auth["dmarc"] == "fail"


def test_it_normalises_ses_verdicts() -> None:
    auth = authentication_normalise({"spf": "PASS", "dkim": "PASS", "dmarc": "GRAY", "spam": "PASS", "virus": "PASS"})

    assert auth == {"spf": "pass", "dkim": "pass", "dmarc": "none", "spam": "pass", "virus": "pass"}
    # SES says nothing about which domain passed: only its DMARC verdict aligns.
    assert not aligned_for(auth, "alice@example.com")
    assert aligned_for({"spf": "PASS", "dkim": "PASS", "dmarc": "PASS"}, "alice@example.com")


def test_it_ignores_authentication_results_written_by_the_sender(fake_dns: Any, settings: Any) -> None:
    settings.AUTHSERV_ID = "mx.agents.localhost"
    settings.AUTHSERV_TRUSTED_RELAYS = ["10.0.0.0/8"]
    forged = "mx.agents.localhost; spf=pass smtp.mailfrom=ceo@example.com; dkim=pass header.d=example.com; dmarc=pass"
    raw = build_mail(to="owner@agents.localhost", sender="ceo@example.com", headers={"Authentication-Results": forged})
    raw = b"Authentication-Results: " + forged.encode() + b"\r\n" + raw

    from_outside = authentication_check(raw=raw, peer_ip="203.0.113.5", helo="h.test", mail_from="ceo@example.com")
    from_our_relay = authentication_check(raw=raw, peer_ip="10.1.2.3", helo="h.test", mail_from="ceo@example.com")

    assert from_outside["aligned"] is False and from_outside["source"] == "local"
    assert from_our_relay["aligned"] is True and from_our_relay["source"] == "authserv"


@pytest.mark.parametrize("authserv", ["other.host", ""])
def test_it_ignores_authentication_results_of_another_authserv_id(fake_dns: Any, settings: Any, authserv: str) -> None:
    settings.AUTHSERV_ID = authserv
    settings.AUTHSERV_TRUSTED_RELAYS = ["10.0.0.0/8"]
    header = b"Authentication-Results: mx.agents.localhost; dkim=pass header.d=example.com\r\n"
    raw = header + build_mail(to="owner@agents.localhost", sender="ceo@example.com")

    assert authentication_check(raw=raw, peer_ip="10.1.2.3", helo="h", mail_from="ceo@example.com")["aligned"] is False


def test_it_never_aligns_a_message_with_two_from_headers(fake_dns: Any, settings: Any) -> None:
    # Our front MTA's verifier may pass a signature covering only the last From; readers
    # (and we) take the first.
    settings.AUTHSERV_ID = "mx.agents.localhost"
    settings.AUTHSERV_TRUSTED_RELAYS = ["127.0.0.1"]
    verdict = b"Authentication-Results: mx.agents.localhost; dkim=pass header.d=mail.test; spf=none\r\n"
    genuine = build_mail(to="owner@agents.localhost", sender="attacker@mail.test")

    single = authentication_check(raw=verdict + genuine, peer_ip="127.0.0.1", helo="h", mail_from="")
    double = authentication_check(
        raw=verdict + b"From: ceo@mail.test\r\n" + genuine, peer_ip="127.0.0.1", helo="h", mail_from=""
    )

    assert single["aligned"] is True
    assert double["aligned"] is False and double["dkim"] == "pass" and double["single_from"] is False
    assert not aligned_for(double, "ceo@mail.test")


def test_the_from_address_and_single_from_over_the_corpus() -> None:
    # One parse answers both questions; the stdlib's parseaddr of the header as written
    # (raw UTF-8 decoded, encoded words not) is the oracle for the address.
    from email.utils import getaddresses, parseaddr

    from mail.authn import header_block, header_from
    from mail.parsing import header_text

    def as_written(value: Any) -> str:
        return " ".join(header_text(value).split())

    from tests.mail.corpus import corpus_required, real_mails

    corpus_required()
    raws = real_mails(max_bytes=2_000_000)
    raws += [
        b"From: a@x.test, b@x.test\r\nSubject: two mailboxes\r\n\r\nbody\r\n",
        b"From: One <ONE@X.test>\r\nFrom: two@x.test\r\n\r\nbody\r\n",
        b"Subject: no from\r\n\r\nbody\r\n",
        b"From: =?utf-8?q?Ren=C3=A9?= <rene@x.test>\r\n\r\nbody\r\n",
    ]
    singles = 0
    for raw in raws:
        headers = header_block(raw)
        values = headers.get_all("From") or []
        try:
            addr = parseaddr(as_written(headers.get("From")))[1]
            found = getaddresses([as_written(values[0])]) if values else []
        except Exception:
            addr, found = "", []
        if len(found) > 1:
            # parseaddr answers the first mailbox here, or (strict, in later Pythons) none;
            # header_from answers the first, pinned by the cases below.
            addr = found[0][1]
        mailboxes = [a for _, a in found if a]
        expected = (addr.strip().lower() if "@" in addr else "", len(values) == 1 and len(mailboxes) == 1)
        assert header_from(headers) == expected, raw[:300]
        singles += expected[1]
    assert header_from(header_block(raws[-4])) == ("a@x.test", False)
    assert header_from(header_block(raws[-3])) == ("one@x.test", False)
    assert header_from(header_block(raws[-1])) == ("rene@x.test", True)
    assert singles > len(raws) // 2


@pytest.mark.parametrize(
    ("from_header", "expected"),
    [
        # An encoded "@" in the display name is text, not the address (RFC 2047 §5).
        (b"=?utf-8?q?ok=40fine=2Etest?= <eve@blocked.test>", ("eve@blocked.test", True)),
        # An encoded comma does not split one mailbox in two.
        (b"=?utf-8?q?Doe=2C_John?= <john@trusted.test>", ("john@trusted.test", True)),
        # RFC 6532: a raw UTF-8 address is read as UTF-8.
        ("José <josé@exämple.test>".encode(), ("josé@exämple.test", True)),
    ],
)
def test_the_from_address_is_parsed_before_display_names_are_decoded(from_header: bytes, expected: Any) -> None:
    from mail.authn import header_block, header_from

    assert header_from(header_block(b"From: " + from_header + b"\r\nSubject: s\r\n\r\nbody\r\n")) == expected


def test_a_trusted_sender_with_an_encoded_comma_in_the_name_stays_aligned(fake_dns: Any, settings: Any) -> None:
    settings.AUTHSERV_ID = "mx.agents.localhost"
    settings.AUTHSERV_TRUSTED_RELAYS = ["127.0.0.1"]
    raw = (
        b"Authentication-Results: mx.agents.localhost; dkim=pass header.d=trusted.test; spf=none\r\n"
        b"From: =?utf-8?q?Doe=2C_John?= <john@trusted.test>\r\nSubject: s\r\n\r\nbody\r\n"
    )

    verdict = authentication_check(raw=raw, peer_ip="127.0.0.1", helo="h", mail_from="")

    assert verdict["aligned"] is True and verdict["single_from"] is True and verdict["from_domain"] == "trusted.test"


@pytest.mark.parametrize("name", ["dns_resolve", "dns_offline"])
def test_a_resolver_named_by_its_former_module_still_resolves(settings: Any, name: str) -> None:
    settings.TRUST_DNS_RESOLVER = f"directory.authn.{name}"

    assert resolver() is getattr(authn, name)
