"""Who really sent a message: SPF, DKIM and DMARC-style alignment of the From domain.

Every inbound delivery carries ``InboundDelivery.authentication``, one JSON dict. This module
defines its shape, computes it for the local SMTP listener, and normalises what SES reports.

The normalised shape (what ``Message.authentication`` stores and the inbox item summarises)::

    {
        "spf": "pass" | "fail" | "softfail" | "neutral" | "none" | "temperror" | "permerror",
        "spf_domain": "example.com",        # the domain SPF was checked for (MAIL FROM, else HELO)
        "dkim": "pass" | "fail" | "none",   # pass: at least one signature verified
        "dkim_domains": ["example.com"],    # d= of every signature that verified
        "dmarc": "pass" | "fail" | "none",  # SES: its DMARC verdict; local: the alignment result
        "aligned": bool,                    # DKIM or SPF passed for the From's organisational domain
        "from_domain": "example.com",       # the header From domain alignment was computed for
        "single_from": bool,                # exactly one From header with one mailbox (else never aligned)
        "source": "local" | "ses" | "authserv",
    }

Agent-to-agent mail is ``{"internal": True}``: authenticated by construction.

**For the SES path** (the AWS developer): pass the receipt's verdicts as they come, e.g.
``{"spf": "PASS", "dkim": "FAIL", "dmarc": "GRAY", "spam": "PASS", "virus": "PASS"}``
(``receipt.spfVerdict.status`` and friends). Case does not matter. ``authentication_normalise``
lower-cases them and maps SES words (``GRAY`` → ``none``, ``PROCESSING_FAILED`` → ``temperror``).
SES does not say which domain a DKIM signature or SPF check was for, so on that path
``aligned`` is true only when SES's own DMARC verdict is ``PASS`` (SES evaluates DMARC against
the header From); a domain without a DMARC record is therefore never aligned on SES. If the
receipt does carry ``dkim_domains`` / ``spf_domain`` they are used as on the local path.

**For the local listener**, ``authentication_check`` verifies DKIM (dkimpy) and SPF (pyspf)
itself through ``resolver()`` — the callable named by ``TRUST_DNS_RESOLVER``; pyspf is asked through
``compat.pyspf``, which answers its lookups with that resolver — so tests serve
DNS from a dict and never touch the network. Authentication-Results headers are honoured only
when ``AUTHSERV_ID`` is set, the header is the topmost one, carries exactly that authserv-id,
and the connection came from one of ``AUTHSERV_TRUSTED_RELAYS`` (our own front MTA, which per
RFC 8601 §5 strips forged copies). Any other Authentication-Results header is text written by
the sender and is ignored.

Alignment is relaxed (DMARC ``adkim=r``/``aspf=r``): same organisational domain. The
organisational domain is approximated without the Public Suffix List: the last two labels, or
three when the second-to-last is a common second-level registry label (``co.uk``, ``com.au``).
Multi-tenant suffixes such as ``github.io`` are therefore treated as one organisation; this is a
known, documented approximation.
"""

from __future__ import annotations

import email.message
import functools
import ipaddress
import logging
import re
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.utils.module_loading import import_string

from compat import pyspf
from mail.headers import header_block_end
from mail.parsing import header_mailboxes, parse_header_block

log = logging.getLogger(__name__)

SPF_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
_SES_WORDS = {"gray": "none", "processing_failed": "temperror", "disabled": "none"}
_SECOND_LEVEL = {"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go", "gv", "ltd", "plc", "nic", "mil"}
MAX_DKIM_SIGNATURES = 5

Resolver = Callable[[str, str], list[Any]]


class DnsTemporaryError(Exception):
    """The resolver could not answer in time (maps to temperror)."""


def dns_resolve(name: str, qtype: str) -> list[Any]:
    """The production resolver (dnspython), with a short lifetime so a slow DNS server cannot
    hold an SMTP session open. Returns TXT as str, A/AAAA/PTR as str, MX as (pref, host)."""
    import dns.exception
    import dns.resolver

    try:
        answers = dns.resolver.resolve(name, qtype, lifetime=settings.TRUST_DNS_TIMEOUT_SECONDS)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise DnsTemporaryError(str(exc)) from exc
    out: list[Any] = []
    for rdata in answers:
        if qtype == "TXT":
            out.append(b"".join(rdata.strings).decode("utf-8", "replace"))
        elif qtype == "MX":
            out.append((rdata.preference, rdata.exchange.to_text(True)))
        elif qtype == "PTR":
            out.append(rdata.target.to_text(True))
        else:
            out.append(rdata.to_text())
    return out


def dns_offline(name: str, qtype: str) -> list[Any]:
    """A resolver that knows no names: SPF and DKIM come out "none" (the test default)."""
    return []


# A TRUST_DNS_RESOLVER written for releases where this module was directory.authn.
_FORMER_MODULE = "directory.authn."


def resolver() -> Resolver:
    configured = settings.TRUST_DNS_RESOLVER
    if not isinstance(configured, str):
        return cast(Resolver, configured)
    if configured.startswith(_FORMER_MODULE):
        configured = "mail.authn." + configured.removeprefix(_FORMER_MODULE)
    return cast(Resolver, import_string(configured))


# --- organisational domain and alignment ---------------------------------------------------


def organisational_domain(domain: str) -> str:
    labels = [label for label in domain.lower().strip(".").split(".") if label]
    if len(labels) >= 3 and (labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2):
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def domains_aligned(from_domain: str, other: str) -> bool:
    if not from_domain or not other:
        return False
    return organisational_domain(from_domain) == organisational_domain(other)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(">").lower()


def aligned_for(authentication: dict[str, Any], sender: str) -> bool:
    """DKIM or SPF passed for the organisational domain of ``sender`` (the header From).

    Recomputed from the verdicts rather than trusting a stored ``aligned`` flag, so a message
    whose From was parsed differently elsewhere can never inherit another domain's pass.
    """
    if authentication.get("internal"):
        return True
    from_domain = domain_of(sender)
    if not from_domain or authentication.get("single_from") is False:
        return False
    auth = authentication_normalise(authentication)
    if "dkim_domains" in auth or "spf_domain" in auth:
        if auth["dkim"] == "pass" and any(domains_aligned(from_domain, d) for d in auth.get("dkim_domains", [])):
            return True
        return auth["spf"] == "pass" and domains_aligned(from_domain, str(auth.get("spf_domain", "")))
    # SES: only its DMARC verdict ties a pass to the header From.
    return bool(auth["dmarc"] == "pass")


# --- normalising ---------------------------------------------------------------------------


def _word(value: Any, allowed: tuple[str, ...]) -> str:
    word = str(value or "none").strip().lower()
    word = _SES_WORDS.get(word, word)
    return word if word in allowed else "none"


def authentication_normalise(authentication: dict[str, Any]) -> dict[str, Any]:
    """Lower-case and bound verdicts from any source to the shape in the module docstring."""
    if authentication.get("internal"):
        return {"internal": True, "spf": "pass", "dkim": "pass", "dmarc": "pass", "aligned": True}
    out = dict(authentication)
    out["spf"] = _word(authentication.get("spf"), SPF_RESULTS)
    out["dkim"] = _word(authentication.get("dkim"), ("pass", "fail", "none"))
    out["dmarc"] = _word(authentication.get("dmarc"), ("pass", "fail", "none"))
    if "dkim_domains" in authentication:
        out["dkim_domains"] = [str(d).lower() for d in authentication.get("dkim_domains") or []]
    if "spf_domain" in authentication:
        out["spf_domain"] = str(authentication.get("spf_domain") or "").lower()
    if "single_from" in authentication:
        out["single_from"] = bool(authentication["single_from"])
    for extra in ("spam", "virus"):
        if extra in authentication:
            out[extra] = str(authentication[extra]).lower()
    return out


def authentication_for_sender(authentication: dict[str, Any], sender: str) -> dict[str, Any]:
    """The normalised dict with ``aligned`` computed for this From address (what is stored)."""
    out = authentication_normalise(authentication)
    out["aligned"] = aligned_for(authentication, sender)
    if not out.get("internal"):
        out.setdefault("from_domain", domain_of(sender))
    return out


# --- local checks --------------------------------------------------------------------------
def spf_check(*, ip: str, mail_from: str, helo: str, resolve: Resolver | None = None) -> tuple[str, str]:
    """(result, domain checked). Null sender (bounces): SPF is checked for the HELO name."""
    domain = domain_of(mail_from) if "@" in mail_from else ""
    if not domain:
        domain = helo.lower()
        mail_from = f"postmaster@{helo}" if helo else ""
    if not ip or not domain:
        return "none", domain
    try:
        result = pyspf.check(
            ip=ip,
            mail_from=mail_from,
            helo=helo or domain,
            resolve=resolve or resolver(),
            temporary=DnsTemporaryError,
            querytime=settings.TRUST_DNS_TIMEOUT_SECONDS * 3,
        )
    except Exception:  # a library bug on hostile input is a temperror, never a pass
        log.exception("SPF check failed")
        result = "temperror"
    result = result.lower()
    return (result if result in SPF_RESULTS else "none"), domain


def dkim_check(raw: bytes, *, resolve: Resolver | None = None) -> tuple[str, list[str]]:
    """("pass"|"fail"|"none", domains of verified signatures). At most MAX_DKIM_SIGNATURES
    signatures are tried, so a message cannot make us do unbounded DNS and RSA work."""
    import dkim

    resolve = resolve or resolver()

    def dnsfunc(name: Any, timeout: int = 5) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else str(name)
        try:
            records = resolve(qname.rstrip("."), "TXT")
        except DnsTemporaryError:
            return None
        return records[0].encode() if records and isinstance(records[0], str) else (records[0] if records else None)

    try:
        signer = dkim.DKIM(raw, timeout=int(settings.TRUST_DNS_TIMEOUT_SECONDS) or 1)
        count = sum(1 for name, _ in signer.headers if name.lower() == b"dkim-signature")
    except Exception:
        return "fail", []
    if count == 0:
        return "none", []
    domains: list[str] = []
    for index in range(min(count, MAX_DKIM_SIGNATURES)):
        try:
            ok = signer.verify(idx=index, dnsfunc=dnsfunc)
        except Exception:  # malformed signature or key: a failure, never a crash
            ok = False
        if ok and signer.domain:
            domains.append(signer.domain.decode().lower())
    return ("pass" if domains else "fail"), sorted(set(domains))


def header_block(raw: bytes) -> email.message.Message:
    """The header block alone, undecoded (compat32), from the configured parser
    (``mail.parsing.parse_header_block``). Parse it once per message and hand it to the
    checks below: at DATA time each parse is a noticeable share of the listener."""
    end = header_block_end(raw)
    return parse_header_block(raw if end is None else raw[: end[1]])


def header_from_address(headers: email.message.Message) -> str:
    """The header From address (from ``header_block``)."""
    return header_from(headers)[0]


def header_from(headers: email.message.Message) -> tuple[str, bool]:
    """The header From address (lowercased; "" when there is none), and whether the mail
    has exactly one From header naming exactly one mailbox. DKIM signs the *last* From
    header while readers show the first, so a second From prepended to a genuinely signed
    message would otherwise borrow its signature (and a multi-mailbox From is ambiguous
    too). One parse of the From for both: the listener asks for every mail. The address
    is read as ingestion reads it (``header_mailboxes``: before any encoded word is
    decoded), so a block or a verdict applies to the address the mail really names."""
    try:
        values = headers.get_all("From") or []
        mailboxes = header_mailboxes(values[:1])
    except Exception:  # hostile headers: no From, never a crash that turns into an SMTP 451 loop
        return "", False
    addr = mailboxes[0][1] if mailboxes else ""
    single = len(values) == 1 and len([a for _, a in mailboxes if a]) == 1
    return (addr.strip().lower() if "@" in addr else ""), single


_AR_METHOD = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)([^;]*)", re.I)
_AR_PROP = re.compile(r"\b(header\.d|header\.i|smtp\.mailfrom|smtp\.helo|header\.from)\s*=\s*([^\s;]+)", re.I)


def authentication_results_trusted(headers: email.message.Message, *, peer_ip: str = "") -> dict[str, Any] | None:
    """Verdicts from the topmost Authentication-Results header when it was written by our own
    receiving host (``AUTHSERV_ID``) and the connection came from a trusted relay; else None."""
    authserv_id = settings.AUTHSERV_ID
    if not authserv_id or not peer_ip or not peer_trusted(peer_ip):
        return None
    values = headers.get_all("Authentication-Results") or []
    if not values:
        return None
    top = " ".join(str(values[0]).split())
    serv, _, rest = top.partition(";")
    serv_words = serv.split()
    if not serv_words or serv_words[0].lower() != authserv_id.lower():
        return None
    out: dict[str, Any] = {"spf": "none", "dkim": "none", "dmarc": "none", "dkim_domains": [], "spf_domain": ""}
    dkim_results: list[str] = []
    for clause in rest.split(";"):
        match = _AR_METHOD.search(clause)
        if not match:
            continue
        method, result, props = (
            match.group(1).lower(),
            match.group(2).lower(),
            dict((k.lower(), v.strip("<>").lower()) for k, v in _AR_PROP.findall(match.group(3))),
        )
        if method == "spf":
            out["spf"] = result
            out["spf_domain"] = domain_of(props.get("smtp.mailfrom", "")) or props.get("smtp.helo", "")
        elif method == "dkim":
            dkim_results.append(result)
            if result == "pass":
                d = props.get("header.d") or domain_of(props.get("header.i", ""))
                if d:
                    out["dkim_domains"].append(d)
        elif method == "dmarc":
            out["dmarc"] = result
    if dkim_results:
        out["dkim"] = "pass" if "pass" in dkim_results else "fail"
    out["source"] = "authserv"
    return authentication_normalise(out)


def peer_trusted(peer_ip: str) -> bool:
    """Whether the connection comes from one of ``AUTHSERV_TRUSTED_RELAYS``: our own front MTA."""
    return _peer_in(peer_ip, tuple(settings.AUTHSERV_TRUSTED_RELAYS))


@functools.lru_cache(maxsize=1024)
def _peer_in(peer_ip: str, relays: tuple[str, ...]) -> bool:
    # Cached: the listener asks for every mail, and a front MTA connects from a few addresses.
    try:
        ip = ipaddress.ip_address(peer_ip)
    except ValueError:
        return False
    return any(ip in network for network in _networks(relays))


@functools.lru_cache(maxsize=8)
def _networks(relays: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for relay in relays:
        try:
            networks.append(ipaddress.ip_network(relay, strict=False))
        except ValueError:
            continue
    return networks


def authentication_relayed(headers: email.message.Message, *, peer_ip: str) -> dict[str, Any] | None:
    """The verdict a trusted relay wrote (``authentication_results_trusted``), completed as
    ``authentication_check`` completes its own; None when there is none to trust. Needs no
    DNS, so the SMTP listener may call it on its event loop. May raise on a header it
    cannot read."""
    trusted = authentication_results_trusted(headers, peer_ip=peer_ip)
    if trusted is None:
        return None
    sender, single_from = header_from(headers)
    return authentication_for_sender({**trusted, "single_from": single_from}, sender)


def authentication_check(
    *, raw: bytes, peer_ip: str, helo: str, mail_from: str, headers: email.message.Message | None = None
) -> dict[str, Any]:
    """The full local verdict for one message received by our SMTP listener. Blocking (DNS):
    call it from an executor, never on the event loop. ``headers``: its ``header_block``,
    when the caller has parsed it already."""
    headers = header_block(raw) if headers is None else headers
    try:
        relayed = authentication_relayed(headers, peer_ip=peer_ip)
    except Exception:
        log.exception("unreadable Authentication-Results from a trusted relay")
        relayed = None
    if relayed is not None:
        return relayed
    sender, single_from = header_from(headers)
    resolve = resolver()
    spf_result, spf_domain = spf_check(ip=peer_ip, mail_from=mail_from, helo=helo, resolve=resolve)
    dkim_result, dkim_domains = dkim_check(raw, resolve=resolve)
    auth: dict[str, Any] = {
        "spf": spf_result,
        "spf_domain": spf_domain,
        "dkim": dkim_result,
        "dkim_domains": dkim_domains,
        "source": "local",
        "single_from": single_from,
    }
    aligned = aligned_for(auth, sender)
    # No DMARC record lookup: "dmarc" here reports the relaxed-alignment result.
    auth["dmarc"] = "pass" if aligned else ("none" if spf_result == "none" and dkim_result == "none" else "fail")
    auth["aligned"] = aligned
    auth["from_domain"] = domain_of(sender)
    return auth
