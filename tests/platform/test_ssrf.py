"""The SSRF guard (outbox/ssrf.py) over a table of URL forms, and the pinned connection that defeats
DNS rebinding.

No test here reaches the network: names resolve only through the table resolver below (an unknown
name does not resolve), and every socket ``connect`` is refused unless it goes to a loopback listener
the test itself started (``allowed``); refused attempts are recorded so a test can say where the
client tried to go.
"""

import http.server
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import transaction

from outbox import ssrf
from outbox.emit import emit
from outbox.models import Delivery, WebhookSubscription
from outbox.webhooks import new_secret
from tests.events.peers import relay_until_settled
from tests.helpers import assert_problem

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

# name -> addresses the patched resolver answers with
DNS: dict[str, list[str]] = {
    "hooks.example.com": [PUBLIC_V4],
    "v6.example.com": [PUBLIC_V6],
    "both.example.com": [PUBLIC_V4, PUBLIC_V6],
    "internal.example.com": ["10.0.0.5"],
    "loopback.example.com": ["127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "mixed.example.com": [PUBLIC_V4, "192.168.1.10"],
    "v6-loopback.example.com": ["::1"],
    "v6-mapped.example.com": ["::ffff:127.0.0.1"],
    "v6-ula.example.com": ["fd00::1"],
    "v6-nat64.example.com": ["64:ff9b::a9fe:a9fe"],
    "cgnat.example.com": ["100.64.0.1"],
    "localhost": ["127.0.0.1", "::1"],
    "xn--bcher-kva.example": ["10.1.1.1"],  # bücher.example
    "shop.xn--bcher-kva.example": [PUBLIC_V4],
}


class Network:
    """The patched resolver and socket layer of one test."""

    def __init__(self) -> None:
        self.lookups: list[str] = []
        self.refused: list[tuple[str, int]] = []
        self.allowed: set[tuple[str, int]] = set()
        self.dns = dict(DNS)

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, *args: Any, **kwargs: Any) -> list:  # noqa: A002
        host = host.decode() if isinstance(host, bytes) else str(host)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            self.lookups.append(host)
            if host not in self.dns:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = self.dns[host]
        out = []
        for address in addresses:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if fam == socket.AF_INET6 else (address, int(port or 0))
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out


@pytest.fixture
def network(monkeypatch) -> Iterator[Network]:
    net = Network()
    real_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        target = (str(address[0]), int(address[1]))
        if target not in net.allowed:
            net.refused.append(target)
            raise ConnectionRefusedError(f"test network: connection to {target} refused")
        real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", net.getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return net


@pytest.fixture
def strict(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.BROKER_PUBLISH = False
    settings.WEBHOOK_TIMEOUT = 2


REFUSED = [
    # schemes and shapes
    ("ftp://hooks.example.com/h", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://hooks.example.com/", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("hooks.example.com/h", "no-scheme"),
    ("http:///nohost", "no-host"),
    ("http://", "empty"),
    ("http://hooks.example.com\\@127.0.0.1/", "backslash"),
    ("http://hooks.example.com /h", "space"),
    ("http://hooks.example.com/h\r\nX: y", "crlf"),
    ("http://%31%32%37.0.0.1/", "percent-host"),
    # userinfo
    ("http://user:pass@hooks.example.com/h", "userinfo"),
    ("http://hooks.example.com@127.0.0.1/h", "userinfo-host-confusion"),
    ("http://user@10.0.0.1/", "userinfo-private"),
    # IPv4 literals and encodings
    ("http://127.0.0.1/h", "loopback"),
    ("http://127.1.2.3:8080/h", "loopback-range"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://10.0.0.8/", "rfc1918-10"),
    ("http://172.16.5.4/", "rfc1918-172"),
    ("http://192.168.1.1/", "rfc1918-192"),
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://100.64.0.1/", "cgnat"),
    ("http://192.0.2.1/", "documentation"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://2130706433/", "decimal"),
    ("http://017700000001/", "octal-whole"),
    ("http://0177.0.0.1/", "octal-dotted"),
    ("http://0x7f000001/", "hex-whole"),
    ("http://0x7f.0x0.0x0.0x1/", "hex-dotted"),
    ("http://0x7f.1/", "hex-short"),
    ("http://127.1/", "short-two"),
    ("http://127.0.1/", "short-three"),
    ("http://0/", "zero"),
    ("http://3232235777/", "decimal-192.168.1.1"),
    ("http://8.8.8.010/", "octal-last-octet"),
    ("http://1.1.1.1.", "trailing-dot-literal"),
    # IPv6 literals and IPv4 embeddings
    ("http://[::1]/h", "v6-loopback"),
    ("http://[::]/", "v6-unspecified"),
    ("http://[fe80::1]/", "v6-link-local"),
    ("http://[fe80::1%25eth0]/", "v6-scoped"),
    ("http://[fc00::1]/", "v6-ula-fc"),
    ("http://[fd12:3456::1]/", "v6-ula-fd"),
    ("http://[fec0::1]/", "v6-site-local"),
    ("http://[ff02::1]/", "v6-multicast"),
    ("http://[2001:db8::1]/", "v6-documentation"),
    ("http://[::ffff:127.0.0.1]/", "v4-mapped-dotted"),
    ("http://[::ffff:7f00:1]/", "v4-mapped-hex"),
    ("http://[::ffff:a9fe:a9fe]/", "v4-mapped-metadata"),
    ("http://[::ffff:0:7f00:1]/", "v4-translated"),
    ("http://[::7f00:1]/", "v4-compatible"),
    ("http://[::127.0.0.1]/", "v4-compatible-dotted"),
    ("http://[::808:808]/", "v4-compatible-public-still-refused"),
    ("http://[64:ff9b::7f00:1]/", "nat64-loopback"),
    ("http://[64:ff9b::a9fe:a9fe]/", "nat64-metadata"),
    ("http://[64:ff9b::10.0.0.1]/", "nat64-private-dotted"),
    ("http://[64:ff9b:1::808:808]/", "nat64-local-use"),
    ("http://[2002:7f00:1::]/", "6to4-loopback"),
    ("http://[2002:a9fe:a9fe::1]/", "6to4-metadata"),
    ("http://[2002:c0a8:101::]/", "6to4-private"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "teredo-client-127"),
    ("http://[100::1]/", "v6-discard"),
    # names resolving to private space (patched resolver)
    ("http://internal.example.com/h", "name-rfc1918"),
    ("http://loopback.example.com/h", "name-loopback"),
    ("http://metadata.example.com/h", "name-metadata"),
    ("https://mixed.example.com/h", "name-one-of-two-private"),
    ("http://v6-loopback.example.com/", "name-v6-loopback"),
    ("http://v6-mapped.example.com/", "name-v6-mapped"),
    ("http://v6-ula.example.com/", "name-v6-ula"),
    ("http://v6-nat64.example.com/", "name-nat64-metadata"),
    ("http://cgnat.example.com/", "name-cgnat"),
    ("http://localhost:8000/h", "localhost"),
    ("http://LOCALHOST/h", "localhost-upper"),
    ("http://localhost./h", "localhost-trailing-dot"),
    ("http://bücher.example/", "idn-private"),
    ("http://unknown.invalid/h", "does-not-resolve"),
]

APPROVED = [
    ("https://hooks.example.com/h", PUBLIC_V4, "hooks.example.com"),
    ("http://hooks.example.com:8080/h", PUBLIC_V4, "hooks.example.com:8080"),
    ("https://HOOKS.example.com:443/h", PUBLIC_V4, "hooks.example.com"),
    ("https://v6.example.com/h", PUBLIC_V6, "v6.example.com"),
    ("https://both.example.com/h", PUBLIC_V4, "both.example.com"),
    ("http://shop.bücher.example/", PUBLIC_V4, "shop.xn--bcher-kva.example"),
    ("http://8.8.8.8/h", "8.8.8.8", "8.8.8.8"),
    (f"http://[{PUBLIC_V6}]/h", PUBLIC_V6, f"[{PUBLIC_V6}]"),
    ("http://[64:ff9b::808:808]/", "64:ff9b::808:808", "[64:ff9b::808:808]"),
    ("http://[2002:808:808::1]/", "2002:808:808::1", "[2002:808:808::1]"),
    ("http://[::ffff:8.8.8.8]/", "::ffff:808:808", "[::ffff:8.8.8.8]"),
]


def test_the_table_has_at_least_fifty_forms():
    assert len(REFUSED) + len(APPROVED) >= 50
    assert len({url for url, _ in REFUSED}) == len(REFUSED)


@pytest.mark.parametrize(("url", "case"), REFUSED, ids=[case for _, case in REFUSED])
def test_refused(strict, network, url, case):
    with pytest.raises(ssrf.UnsafeURL):
        ssrf.approve(url)
    assert network.refused == []


@pytest.mark.parametrize(("url", "address", "host"), APPROVED, ids=[u for u, _, _ in APPROVED])
def test_approved_and_pinned(strict, network, url, address, host):
    target = ssrf.approve(url)
    assert str(target.address) == str(ipaddress.ip_address(address))
    assert target.host_header == host
    assert target.dial_url.host == str(target.address)


def test_allow_private_lifts_the_address_rules_not_the_parsing_rules(settings, network):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert str(ssrf.approve("http://loopback.example.com/h").address) == "127.0.0.1"
    for url in ("http://0x7f.1/", "http://u:p@127.0.0.1/", "ftp://127.0.0.1/"):
        with pytest.raises(ssrf.UnsafeURL):
            ssrf.approve(url)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["http://[64:ff9b::7f00:1]/", "http://2130706433/", "http://internal.example.com/", "http://[fec0::1]/"],
)
def test_the_api_refuses_them_with_422_and_stores_nothing(api, strict, network, url):
    body = assert_problem(
        api.post("/api/v1/webhook/subscription", {"url": url}, format="json"), 422, "validation_error"
    )
    assert list(body["errors"]) == ["url"]
    assert WebhookSubscription.objects.count() == 0
    assert network.refused == []


def test_https_keeps_the_name_for_sni_and_the_certificate_check(strict, network):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    target = ssrf.approve("https://hooks.example.com:8443/h?x=1")
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        ssrf.pinned_request(client, "POST", target, content=b"{}")
    (request,) = seen
    assert str(request.url) == f"https://{PUBLIC_V4}:8443/h?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


# --- DNS rebinding -------------------------------------------------------------------------------
class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append({"host": self.headers["Host"], "path": self.path})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[int, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()
    server.server_close()


class Rebinding:
    """A name whose first answer differs from every later one (a rebinding attacker's DNS)."""

    def __init__(self, monkeypatch: Any, network: Network, name: str, first: str, later: str):
        self.calls = 0
        original = network.getaddrinfo

        def answer(host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
            if host == name:
                self.calls += 1
                network.dns[name] = [first if self.calls == 1 else later]
            return original(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", answer)


def _deliver(tenant, url: str) -> Delivery:
    WebhookSubscription.objects.create(tenant=tenant, url=url, secret=new_secret())
    with transaction.atomic():
        emit(tenant=tenant, type="tier.changed", member_id="ann", data={"tier": "gold"})
    relay_until_settled()
    return Delivery.objects.get()


@pytest.mark.django_db
def test_rebinding_connects_to_the_address_the_guard_approved(tenant, settings, network, listener, monkeypatch):
    """The first answer (our listener) is approved; every later answer points elsewhere. The request
    reaches the listener, with the name as Host, and the name is resolved once per attempt."""
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the approved address is the test's own loopback listener
    settings.BROKER_PUBLISH = False
    port, received = listener
    network.allowed.add(("127.0.0.1", port))
    rebinding = Rebinding(monkeypatch, network, "rebind.example.com", first="127.0.0.1", later="10.66.66.66")
    delivery = _deliver(tenant, f"http://rebind.example.com:{port}/hook")
    assert delivery.status == Delivery.Status.DELIVERED, delivery.last_error
    assert received == [{"host": f"rebind.example.com:{port}", "path": "/hook"}]
    assert rebinding.calls == 1
    assert network.refused == []


@pytest.mark.django_db
def test_rebinding_to_loopback_after_a_public_answer_never_reaches_loopback(
    tenant, strict, network, listener, monkeypatch
):
    """Strict policy: the guard approves a public address; the attacker's DNS then answers with our
    loopback listener. The first attempt dials the approved public address (refused by the test
    network), never the listener; the retry's fresh check sees the loopback answer and gives up."""
    port, received = listener
    network.allowed.add(("127.0.0.1", port))
    rebinding = Rebinding(monkeypatch, network, "rebind.example.com", first=PUBLIC_V4, later="127.0.0.1")
    delivery = _deliver(tenant, f"http://rebind.example.com:{port}/hook")
    assert received == []
    assert network.refused == [(PUBLIC_V4, port)]
    assert rebinding.calls == delivery.attempts == 2  # one lookup per attempt, by the guard only
    assert (delivery.status, delivery.last_error) == (
        Delivery.Status.DEAD,
        "unsafe URL: The host resolves to a non-public address (127.0.0.1): not public.",
    )
