"""The SSRF guard for URLs a tenant gives us (webhook subscriptions), and the pinned connection that
keeps its decision honest.

:func:`approve` parses the URL with the HTTP client's own parser (so the host we judge is the host the
client would dial), refuses what is ambiguous, resolves the host once and judges every address it
resolves to. The returned :class:`Target` carries the address to connect to: :func:`pinned_request`
dials that address and never resolves the name again, so a DNS answer that changes between the check
and the connection (rebinding) cannot redirect the request. The host name still goes out as ``Host``
and as the TLS server name, so certificates are verified against the name, not the address.

What is refused (README "Input rules"):

* schemes other than http/https, URLs without a host, credentials in the URL (``user:pass@``);
* IPv4 written any way but a canonical dotted quad (``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
  ``127.1``): parsers disagree on them, so none is trusted;
* IPv4 addresses that are not public: private, loopback, link-local, shared (CGNAT), multicast,
  reserved, documentation and benchmarking ranges, ``0.0.0.0/8``, broadcast;
* IPv6 addresses outside global unicast (``2000::/3``), or inside it but special (documentation,
  ORCHID, benchmarking, Teredo/6to4 whose embedded IPv4 is not public), unique-local, link-local,
  site-local (``fec0::/10``), multicast, loopback, unspecified, scoped (``%zone``);
* IPv6 forms that embed IPv4 — IPv4-mapped ``::ffff:a.b.c.d``, IPv4-translated ``::ffff:0:a.b.c.d``,
  NAT64 ``64:ff9b::/96`` — unless the embedded address is public; the deprecated IPv4-compatible
  ``::a.b.c.d`` and local-use NAT64 ``64:ff9b:1::/48`` always.

``WEBHOOK_ALLOW_PRIVATE`` (development and tests) lifts the address rules, not the parsing rules or
the pinning.
"""

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(ValueError):
    pass


_IPV4_NOT_PUBLIC = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_IPV6_NOT_PUBLIC = [
    ipaddress.IPv6Network(n)
    for n in (
        "2001:db8::/32",  # documentation
        "2001:10::/28",  # ORCHID
        "2001:20::/28",  # ORCHIDv2
        "2001:2::/48",  # benchmarking
        "3fff::/20",  # documentation (RFC 9637)
    )
]
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")

# A host whose last label is numeric (or 0x-hex) is an IPv4 literal to a WHATWG/inet_aton parser.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_DOTTED_QUAD = re.compile(
    r"^(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$"
)


def _low32(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def ipv4_is_public(address: ipaddress.IPv4Address) -> bool:
    return not any(address in network for network in _IPV4_NOT_PUBLIC) and address != ipaddress.IPv4Address(
        "255.255.255.255"
    )


def why_not_public(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (a reason), or None when it is."""
    if isinstance(address, ipaddress.IPv4Address):
        return None if ipv4_is_public(address) else "not public"
    if address.scope_id:
        return "a scoped address"
    embedded: list[ipaddress.IPv4Address] = []
    if address in _IPV4_MAPPED or address in _IPV4_TRANSLATED or address in _NAT64:
        embedded = [_low32(address)]
    elif address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL:
        return "an IPv4-compatible or local-use NAT64 form"
    elif address in _SIX_TO_FOUR:
        embedded = [ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)]
    elif address in _TEREDO:
        server, client = address.teredo or (None, None)
        embedded = [a for a in (server, client) if a is not None]
    elif address not in _GLOBAL_UNICAST or any(address in network for network in _IPV6_NOT_PUBLIC):
        return "not public"
    for inner in embedded:
        if not ipv4_is_public(inner):
            return f"embeds the non-public IPv4 address {inner}"
    return None


@dataclass(frozen=True)
class Target:
    """An approved URL and the address a connection to it must use."""

    url: httpx.URL
    address: IPAddress

    @property
    def host_header(self) -> str:
        default = {"http": 80, "https": 443}[self.url.scheme]
        name = self.url.raw_host.decode("ascii")
        host = f"[{name}]" if ":" in name else name
        return host if self.url.port in (None, default) else f"{host}:{self.url.port}"

    @property
    def dial_url(self) -> httpx.URL:
        """The URL with the approved address in place of the name (the client opens no other socket)."""
        return self.url.copy_with(host=str(self.address))


Resolver = Callable[..., list[Any]]


def _literal(host: str) -> IPAddress | None:
    """The address a host written as an IP literal stands for; UnsafeURL for ambiguous IPv4 forms."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if labels and _NUMERIC_LABEL.match(labels[-1]):
        if _DOTTED_QUAD.match(host):
            return ipaddress.IPv4Address(host)
        raise UnsafeURL("IPv4 addresses must be written as four decimal numbers (a.b.c.d).")
    return None


def approve(url: str, *, resolver: Resolver | None = None) -> Target:
    """Judge ``url`` and return the :class:`Target` to connect to; :class:`UnsafeURL` says why not.

    ``resolver`` defaults to ``socket.getaddrinfo`` (tests pass their own)."""
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url):
        raise UnsafeURL("The URL contains whitespace, control characters or backslashes.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UnsafeURL(f"The URL does not parse ({exc}).") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UnsafeURL("Only http and https URLs with a host.")
    if parsed.userinfo:
        raise UnsafeURL("Credentials in the URL are not accepted.")
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as resolved and sent
    if "%" in host:
        raise UnsafeURL("Percent-encoded or scoped hosts are not accepted.")
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            infos = (resolver or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UnsafeURL(f"The host does not resolve ({exc}).") from exc
        addresses = [ipaddress.ip_address(str(info[4][0])) for info in infos]
        if not addresses:
            raise UnsafeURL("The host does not resolve.")
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            reason = why_not_public(address)
            if reason is not None:
                raise UnsafeURL(f"The host resolves to a non-public address ({address}): {reason}.")
    return Target(url=parsed, address=addresses[0])


def pinned_request(client: httpx.Client, method: str, target: Target, **kwargs: Any) -> httpx.Response:
    """Send a request to ``target`` over a connection to its approved address only.

    The URL the client dials carries the address; ``Host`` and the TLS server name (``sni_hostname``,
    which httpcore also uses for the certificate's hostname check) carry the name."""
    headers = dict(kwargs.pop("headers", None) or {})
    headers["host"] = target.host_header
    extensions = dict(kwargs.pop("extensions", None) or {})
    name = target.url.raw_host.decode("ascii")
    if target.url.scheme == "https" and _literal_host(name) is None:
        extensions["sni_hostname"] = name
    return client.request(method, target.dial_url, headers=headers, extensions=extensions, **kwargs)


def _literal_host(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
