"""The run-time resolver's client against a loopback DNS server, without a sheer process: which
server a name's questions go to, what a server's FORMERR does, and names kept case-insensitively."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import dns.rcode
import pytest
from dnsserver import DnsServer
from test_http_harness import Harness, harness_fixture  # noqa: F401
from test_http_proxy import get

import sheer.io.dns
from sheer.config.resolver import Resolver
from sheer.core.resolve_wire import NOERROR
from sheer.io.dns import DnsClient, NameLookups

pytestmark = pytest.mark.io


@pytest.fixture(name="servers")
def servers_fixture() -> Iterator[tuple[DnsServer, DnsServer]]:
    first, second = DnsServer("127.0.0.53"), DnsServer("127.0.0.54")
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_a_formerr_is_ignored_and_the_name_asked_of_the_next_server(
        servers: tuple[DnsServer, DnsServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """nginx ignores FORMERR (the question waits for its resend); a name's A and AAAA questions go to
    one server, the resend moves both to the next."""
    confused, good = servers
    confused.rcode = dns.rcode.FORMERR
    good.set("app.test", "127.0.0.21", "::1")
    monkeypatch.setattr(sheer.io.dns, "RESEND", 0.3)
    logged: list[tuple[str, str]] = []
    resolver = Resolver(((confused.host, confused.port), (good.host, good.port)), timeout=3.0)
    client = DnsClient(resolver, lambda level, text: logged.append((level, text)))
    resolution = asyncio.run(client.resolve("app.test"))
    assert resolution.code == NOERROR and resolution.addresses == ("127.0.0.21", "::1")
    assert sorted(kind for _, kind, _ in confused.asked) == ["A", "AAAA"]     # both to the first server
    assert sorted(kind for _, kind, _ in good.asked) == ["A", "AAAA"]         # then both to the next
    assert any(text.startswith("DNS error (1: Format error), query id:") and 'name:"app.test"' in text
               for _, text in logged), logged
    confused.asked.clear()
    good.asked.clear()
    asyncio.run(client.resolve("other.test"))          # the next name starts with the next server
    assert not confused.asked and good.asked


def test_names_are_kept_case_insensitively(servers: tuple[DnsServer, DnsServer]) -> None:
    server = servers[0]
    server.set("case.test", "127.0.0.21")
    server.ttl = 30
    lookups = NameLookups(lambda level, text: None)
    resolver = Resolver(((server.host, server.port),), ipv6=False, timeout=2.0)

    async def both() -> tuple[tuple[str, ...], tuple[str, ...]]:
        one = await lookups.resolve("case.test", resolver)
        two = await lookups.resolve("CASE.Test", resolver)
        return one.addresses, two.addresses

    assert asyncio.run(both()) == (("127.0.0.21",), ("127.0.0.21",))
    assert server.questions("case.test") == 1


def test_a_resolved_name_s_failures_count_within_the_request_only(
        harness: Harness, servers: tuple[DnsServer, DnsServer]) -> None:
    """nginx makes the peers of a name resolved per request afresh for each request: two dead
    addresses are both tried every time (never "no live upstreams"), taking turns at being first."""
    server = servers[0]
    server.ttl = 30
    proxy = harness.listen("127.0.0.1")
    dead = harness.listen("127.0.0.12")
    harness.sockets.pop(("127.0.0.12", dead)).close()
    server.set("many.test", "127.0.0.12", "127.0.0.13")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy};
            location / {{ resolver {server.address} ipv6=off; proxy_pass http://$arg_to;
                          error_page 502 /50x; }}
            location /50x {{ return 200 $upstream_addr; }} }}""")
    both = {f"127.0.0.12:{dead}, 127.0.0.13:{dead}", f"127.0.0.13:{dead}, 127.0.0.12:{dead}"}
    answers = [get(proxy, f"/?to=many.test:{dead}")[2].decode() for _ in range(3)]
    assert set(answers) <= both and answers[0] != answers[1], answers
    assert server.questions("many.test") == 1
