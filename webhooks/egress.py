"""The one way this service makes an outbound HTTP request to a URL a user gave us.

Every webhook delivery (and any future outbound call to a user-supplied URL) goes through
``egress_request``. It defends against SSRF:

- only ``http`` and ``https``;
- the host is resolved exactly once (the resolver is injectable for tests), and the request
  is refused if ANY resolved address is not globally routable: loopback, RFC 1918, link-local,
  CGNAT 100.64/10, multicast, reserved, unspecified, documentation ranges, and IPv6 forms that
  smuggle an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4
  ``2002::/16``, Teredo ``2001::/32``);
- legacy IPv4 spellings (``2130706433``, ``0177.0.0.1``, ``127.1``, ``0x7f.1``) are decoded the
  way ``inet_aton`` would, so they cannot slip past a string check;
- the connection goes to the pinned, checked address (the URL is rewritten to the IP; the
  original name travels in ``Host`` and, for https, as the TLS SNI / certificate name), so a
  second DNS answer (rebinding) is never consulted;
- redirects are never followed: a 3xx is returned to the caller, which treats it as failure.

``WEBHOOKS_ALLOW_LOOPBACK`` (off by default) admits 127.0.0.0/8 and ::1 only, for local
development and the tests' receivers.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_EXCERPT_BYTES = 1024


class UnsafeUrl(Exception):
    """The URL may not be fetched: bad scheme, unresolvable, or a non-global address."""


@dataclass(frozen=True)
class EgressResponse:
    status_code: int
    headers: httpx.Headers
    excerpt: bytes
    latency_ms: int


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"The host {host!r} does not resolve.") from exc
    except UnicodeError as exc:
        # getaddrinfo IDNA-encodes the name first: an empty label or one over 63
        # characters (RFC 1035 §2.3.4) fails there, before any lookup.
        raise UnsafeUrl(f"The host {host!r} is not a valid host name.") from exc
    return [str(info[4][0]) for info in infos]


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Decode the numeric forms inet_aton accepts (1 to 4 parts; decimal, 0-octal, 0x-hex)."""
    parts = host.split(".")
    if host.endswith(".") and len(parts) > 1:
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part, 10))
        except ValueError:
            return None
    # The last part fills all the remaining bytes: 127.1 = 127.0.0.1, 2130706433 = one 32-bit value.
    head, last = values[:-1], values[-1]
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << 8 * (4 - len(head)) | last
    return ipaddress.IPv4Address(number)


def parse_ip_literal(host: str) -> IPAddress | None:
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return _legacy_ipv4(host)


def _v4_is_global(ip: ipaddress.IPv4Address) -> bool:
    return not (
        ip.is_private
        or ip in _CGNAT
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _is_loopback(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def address_is_allowed(ip: IPAddress, *, allow_loopback: bool = False) -> bool:
    if allow_loopback and _is_loopback(ip):
        return True
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_is_global(ip)
    embedded: ipaddress.IPv4Address | None = None
    if ip.ipv4_mapped is not None:
        embedded = ip.ipv4_mapped
    elif ip in _NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    elif ip in _NAT64_LOCAL or ip.teredo is not None:
        # Teredo hides the client address (XORed) and relays through a server we can't vet.
        return False
    elif ip.sixtofour is not None:
        embedded = ip.sixtofour
    if embedded is not None:
        return _v4_is_global(embedded)
    return bool(
        ip.is_global
        and not (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
            or ip.is_site_local
        )
    )


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (a name, or an IP literal)
    port: int
    address: str  # the pinned address to connect to
    path: str


def url_check(url: str, *, resolver: Resolver | None = None, allow_loopback: bool | None = None) -> Target:
    """Validate ``url`` and pin it to one checked address; raise UnsafeUrl otherwise."""
    if allow_loopback is None:
        allow_loopback = settings.WEBHOOKS_ALLOW_LOOPBACK
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("The URL is malformed.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs are allowed.")
    if parts.username or parts.password:
        raise UnsafeUrl("Credentials in the URL are not allowed.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl("The URL has no host.")
    port = port or (443 if scheme == "https" else 80)

    literal = parse_ip_literal(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        addresses = (resolver or system_resolver)(host, port)
    if not addresses:
        raise UnsafeUrl(f"The host {host!r} does not resolve.")
    checked: list[IPAddress] = []
    for raw in addresses:
        ip = parse_ip_literal(raw)
        if ip is None or not address_is_allowed(ip, allow_loopback=allow_loopback):
            raise UnsafeUrl(f"The host {host!r} resolves to a non-public address.")
        checked.append(ip)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, address=str(checked[0]), path=path)


def egress_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes = b"",
    timeout: float | None = None,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
) -> EgressResponse:
    """Send one request to a user-supplied URL, safely. Raises UnsafeUrl before any
    connection is attempted, or httpx.HTTPError for transport failures. ``verify`` is the TLS
    trust (a context with a private CA, say); the certificate is checked against the URL's
    host name, not the pinned IP."""
    target = url_check(url, resolver=resolver)
    timeout = float(timeout if timeout is not None else settings.WEBHOOKS_TIMEOUT_SECONDS)
    host_ip = f"[{target.address}]" if ":" in target.address else target.address
    default_port = 443 if target.scheme == "https" else 80
    netloc_host = f"[{target.host}]" if ":" in target.host else target.host
    host_header = netloc_host if target.port == default_port else f"{netloc_host}:{target.port}"
    pinned_url = f"{target.scheme}://{host_ip}:{target.port}{target.path}"
    request_headers = {**(headers or {}), "Host": host_header}
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    started = time.monotonic()
    # trust_env=False: a proxy from the environment would move the connection elsewhere.
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=verify) as client:
        request = client.build_request(
            method, pinned_url, headers=request_headers, content=content, extensions=extensions
        )
        response = client.send(request, stream=True)
        try:
            excerpt = b""
            # Read at most the excerpt: a receiver streaming an endless body can't hold us.
            for chunk in response.iter_raw():
                excerpt += chunk
                if len(excerpt) >= _EXCERPT_BYTES or time.monotonic() - started > timeout:
                    break
            return EgressResponse(
                status_code=response.status_code,
                headers=response.headers,
                excerpt=excerpt[:_EXCERPT_BYTES],
                latency_ms=int((time.monotonic() - started) * 1000),
            )
        finally:
            response.close()
