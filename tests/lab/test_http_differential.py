"""A differential fuzzer: hostile and odd HTTP requests sent to sheer and to Debian's nginx 1.22 in
the same private namespace, each in front of an upstream that records exactly what it received.
For every case, the class of each answer (and whether the connection closed or went silent) and
the bytes the upstream received must be nginx's, or the difference must be one of DELIBERATE
(explained in docs/reliability.md).

Three families: single requests (request lines, headers, framing, bodies), pipelines (good
requests, a hostile one, good ones again: nothing after it may be answered, nothing before it
lost), and upstream faults (a second response in the same packet, bytes after the last chunk, a
short body...: none may leak into the next request's answer).

CI runs a bounded number of examples (FUZZ_EXAMPLES, default 60); `make fuzz` runs thousands."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from differential import Outcome, Pair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheer.core.http.host import validate_host

pytestmark = pytest.mark.lab

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))

METHODS = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"get", b"G ET", b"",
                           b"CONNECT", b"TRACE", b"PATCH", b"G\x00T", b"PROPFIND", b"FOO_BAR", b"M-SEARCH",
                           b"\r\nGET", b"GET  "])
PATHS = st.one_of(
    st.sampled_from([b"/", b"/a/b?c=d", b"/a/../b", b"/%2e%2e/x", b"/a%2Fb", b"*", b"http://example.com/p?q",
                     b"http://example.com", b"https://x/y", b"//double", b"/a b", b"/\x00", b"/\xff", b"a",
                     b"/" + b"x" * 9000, b"/a#frag", b"/%", b"/%zz", b"/?" + b"q" * 300, b"/%00",
                     b"http://[::1]:8080/v6", b"http://Ex.COM:80?x", b"http://a..b/", b"/./a/./b/.",
                     b"/a/..%2f..%2fx", b"/%3F?%3F", b"/\t", b"/\x7f", b"/" + b"y" * 8150]),
    st.binary(min_size=1, max_size=12).map(lambda b: b"/" + b))
VERSIONS = st.sampled_from([b" HTTP/1.1", b" HTTP/1.0", b"", b" HTTP/2.0", b" HTTP/1.10", b" HTTP/9.9",
                            b" HTTP/1.1 ", b" http/1.1", b" HTTP/1", b" HTTP/1.1x", b" HTTP/0.9",
                            b"  HTTP/1.1", b" HTTP/1.01", b" HTTP/01.1", b" HTTP/1.100"])
NAMES = st.sampled_from([b"Host", b"host", b"X-A", b"User-Agent", b"Accept", b"Content-Length",
                         b"Transfer-Encoding", b"Connection", b"Expect", b"X A", b"X:A", b"", b"X\x00",
                         b"\tX-Folded", b" X-Space", b"X-\xff", b"Upgrade", b"Te", b"X_Under", b"Trailer",
                         b"Proxy-Connection", b"Keep-Alive", b"If-Match", b"Authorization", b"Cookie",
                         b"X-A" * 20])
VALUES = st.one_of(
    st.sampled_from([b"a", b"", b"example.com", b"a b", b"a/../b", b"example.com:80", b"[::1]:80",
                     b"x" * 5000, b"chunked", b"close", b"keep-alive", b"100-continue", b"5", b"-1", b"1x",
                     b"\x00", b"a\rb", b"\xff", b"0", b" padded ", b"\ttab", b"close, keep-alive",
                     b"Upgrade"]),
    st.binary(max_size=10))
ENCODINGS = st.sampled_from([b"chunked", b"xchunked", b"chunkedx", b'"chunked"', b"identity, chunked",
                             b"gzip, chunked", b"\tchunked", b"Chunked", b"chunked, chunked", b"gzip",
                             b"chunked ", b"CHUNKED", b""])
BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=20),
    st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\n", b"z\r\nhello\r\n0\r\n\r\n",
                     b"5\r\nhel\r\n0\r\n\r\n", b"ffffffffffffffffffff\r\nx\r\n0\r\n\r\n", b"0\r\n\r\n",
                     b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n", b"-1\r\nx\r\n0\r\n\r\n",
                     b"5\nhello\n0\n\n", b"5 \r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0 ; x\r\n\r\n",
                     b"0x5\r\nhello\r\n0\r\n\r\n"]))
HOSTS = st.sampled_from([[(b"Host", b"example.com")], [], [(b"Host", b"a"), (b"Host", b"b")],
                         [(b"Host", b"a b")], [(b"Host", b"a/../b")], [(b"Host", b"")],
                         [(b"Host", b"x:99999")], [(b"Host", b"[::1]")], [(b"Host", b"ex\x00ample")],
                         [(b"Host", b"Example.COM.")], [(b"Host", b"a..b")], [(b"Host", b"\xc3\xa9")]])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    line = draw(METHODS) + b" " + draw(PATHS) + draw(VERSIONS)
    headers = list(draw(HOSTS))
    headers += draw(st.lists(st.tuples(NAMES, VALUES), max_size=3))
    body = draw(BODIES)
    framing = draw(st.sampled_from(["none", "length", "wrong-length", "te", "both", "two-lengths"]))
    if framing == "length":
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif framing == "wrong-length":
        headers.append((b"Content-Length", str(len(body) + draw(st.sampled_from([-1, 3, 10**20]))).encode()))
    elif framing == "te":
        headers.append((b"Transfer-Encoding", draw(ENCODINGS)))
    elif framing == "both":
        headers += [(b"Content-Length", b"3"), (b"Transfer-Encoding", draw(ENCODINGS))]
    elif framing == "two-lengths":
        headers += [(b"Content-Length", str(len(body)).encode()), (b"Content-Length", b"1")]
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    head = eol.join([line, *(name + b": " + value for name, value in headers)])
    return head + eol + eol + body


REQUESTS = requests().filter(lambda request: not newer_nginx(request))


# What sheer refuses as nginx 1.29 does where nginx 1.22 did not (docs/reliability.md, "Deliberate
# differences"): CONNECT's target (a host and a port, else 400; then 405), a host whose port is not a
# number up to 65535, a "[" that opens no IPv6 literal or one followed by more than a port. Such
# requests are left out of the comparison; tests/unit/test_http_request_parse.py has them.
_BAD_122 = re.compile(rb"\.\.|[/\x00-\x20\x7f]")


def _host_122(host: bytes) -> bool:
    """Whether nginx 1.22's ngx_http_validate_host takes it (sheer's verdict before nginx 1.29's)."""
    if _BAD_122.search(host):
        return False
    if host.startswith(b"["):
        close = host.find(b"]")
        name = host[:close + 1] if close >= 0 else host
    else:
        name = host.partition(b":")[0]
    return bool(name[:-1] if name and host.rfind(b".") == len(name) - 1 else name)


def newer_nginx(request: bytes) -> bool:
    """A request nginx 1.22 and nginx 1.29 (and sheer) answer differently."""
    head = request.lstrip(b"\r\n").split(b"\r\n\r\n")[0].split(b"\n\n")[0]
    if head.startswith(b"CONNECT"):
        return True
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    hosts = [line[5:].strip(b" ").rstrip(b"\r") for line in lines[1:] if line[:5].lower() == b"host:"]
    absolute = re.search(rb" https?://([^/?# ]*)", lines[0])
    if absolute is not None:
        hosts.append(absolute[1])
    return any(_host_122(host) and validate_host(host) is None for host in hosts)


GOOD = b"GET /good HTTP/1.1\r\nHost: example.com\r\n\r\n"
LAST = b"GET /last HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"


@st.composite
def pipelines(draw: st.DrawFn) -> bytes:
    """Good requests, a hostile one, good ones again, the last asking to close."""
    before = draw(st.integers(0, 4))
    after = draw(st.integers(0, 3))
    return GOOD * before + draw(REQUESTS) + GOOD * after + LAST


# Upstream faults: each one answers both requests of a keepalive client (through upstream keepalive).
FAULTS = {
    "a second response in the same packet":
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG",
    "bytes after the last chunk":
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\nHTTP/1.1 404 X\r\n\r\n",
    "a body shorter than declared":
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nOK",
    "a bad status line": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nOK",
    "a bad chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nOK\r\n0\r\n\r\n",
    "nothing at all, a close": b"",
    "a close-delimited body": b"HTTP/1.0 200 OK\r\n\r\nOK",
    "an interim response first":
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
    "a 204 with a body": b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\nOKHTTP/1.1 200 OK\r\n\r\n",
}
TWO = (b"GET /keepalive/1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
       b"GET /keepalive/2 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")


# Differences sheer keeps on purpose, each explained in docs/reliability.md ("Deliberate
# differences"): the case, and why. The fuzzed requests have none.
DELIBERATE: dict[str, str] = {
    "a bad status line":
        "nginx 1.22 takes an upstream answer without a valid status line for an HTTP/0.9 response and "
        "relays its bytes raw (\"upstream sent no valid HTTP/1.0 header\"); sheer answers 502: bytes "
        "it cannot frame never reach the client",
    "an interim response first":
        "nginx 1.22 takes an upstream's 100 Continue for the final response and relays what follows as "
        "its body; sheer skips the interim response and relays the final one, framed",
}


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    started = Pair()
    try:
        yield started.start()
    finally:
        started.stop()


def compare(outcomes: dict[str, Outcome]) -> list[str]:
    return outcomes["nginx"].differs(outcomes["sheer"])


def check(pair: Pair, data: bytes, answer: bytes | None = None) -> None:
    outcomes = pair.send(data) if answer is None else pair.send(data, answer)
    assert pair.alive(), "a proxy died"
    problems = compare(outcomes)
    assert not problems, f"{data!r}: " + "; ".join(problems)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


@FUZZ
@given(request=REQUESTS)
def test_sheer_answers_hostile_requests_as_nginx_does(pair: Pair, request: bytes) -> None:
    check(pair, request)


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 10))
@given(pipeline=pipelines())
def test_a_hostile_request_among_pipelined_ones_as_nginx(pair: Pair, pipeline: bytes) -> None:
    check(pair, pipeline)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_upstream_fault_leaks_into_no_other_answer(pair: Pair, fault: str) -> None:
    outcomes = pair.send(TWO, FAULTS[fault])
    assert pair.alive(), "a proxy died"
    assert outcomes["sheer"].leaked == 0, outcomes["sheer"].raw
    if fault not in DELIBERATE:
        problems = compare(outcomes)
        assert not problems, f"{fault}: " + "; ".join(problems)
