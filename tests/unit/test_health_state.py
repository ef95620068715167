"""The peer health state machine and match verdicts, with a fake clock: nothing sleeps."""

from __future__ import annotations

import re

from sheer.config.errors import Source
from sheer.config.health import BodyRule, HeaderRule, HealthCheck, HttpMatch, StatusRule, StreamMatch, expect
from sheer.core import hcmatch
from sheer.core.health import Changed, Health, Outcome, PeerHealth

PASS, FAIL = Outcome.PASSED, Outcome.FAILED


def test_defaults_one_failure_down_one_success_up() -> None:
    peer = PeerHealth(HealthCheck(), now=0.0)
    assert peer.state is Health.UP and peer.due == 0.0
    assert peer.record(PASS, now=0.0) is None and peer.due == 5.0
    assert peer.record(FAIL, now=5.0, reason="connect() failed (111: Connection refused)") == Changed(
        Health.UP, Health.DOWN, "connect() failed (111: Connection refused)")
    assert not peer.usable and peer.due == 10.0
    assert peer.record(FAIL, now=10.0) is None
    assert peer.record(PASS, now=15.0) == Changed(Health.DOWN, Health.UP, "passed")
    assert peer.usable


def test_fails_and_passes_count_consecutive_results() -> None:
    peer = PeerHealth(HealthCheck(interval=1.0, fails=2, passes=3), now=0.0)
    assert peer.record(FAIL, now=0.0) is None
    assert peer.record(PASS, now=1.0) is None          # the streak restarts
    assert peer.record(FAIL, now=2.0) is None
    change = peer.record(FAIL, now=3.0, reason="timed out")
    assert change == Changed(Health.UP, Health.DOWN, "timed out (2 failed checks in a row)")
    assert peer.record(PASS, now=4.0) is None
    assert peer.record(PASS, now=5.0) is None
    assert peer.record(FAIL, now=6.0) is None          # back to zero passes
    for now in (7.0, 8.0):
        assert peer.record(PASS, now=now) is None
    assert peer.record(PASS, now=9.0) == Changed(Health.DOWN, Health.UP, "passed (3 passed checks in a row)")


def test_mandatory_peer_checks_before_traffic() -> None:
    check = HealthCheck(mandatory=True, passes=2)
    peer = PeerHealth(check, now=100.0)
    assert peer.state is Health.CHECKING and not peer.usable
    assert peer.record(PASS, now=100.0) == Changed(Health.CHECKING, Health.UP, "passed")
    other = PeerHealth(check, now=100.0)
    assert other.record(FAIL, now=100.0) == Changed(Health.CHECKING, Health.DOWN, "failed")
    # persistent across a reload: the checker starts from the state it had
    assert PeerHealth(check, now=0.0, state=Health.UP).usable


def test_jitter_and_timeout_are_arguments() -> None:
    peer = PeerHealth(HealthCheck(interval=2.0, jitter=1.0, timeout=0.5), now=0.0)
    peer.record(PASS, now=10.0, jitter=0.25)
    assert peer.due == 12.25
    assert peer.timed_out_at(12.25) == 12.75


def test_health_is_the_shared_byte() -> None:
    assert [int(h) for h in (Health.UP, Health.DOWN, Health.CHECKING)] == [0, 1, 2]
    assert Health.DOWN.label == "down"


def test_stream_probe_payload_and_expect() -> None:
    src = Source("x", 1)
    assert hcmatch.probe_payload(HealthCheck(udp=True)) == b"nginx health check"
    assert hcmatch.probe_payload(HealthCheck()) == b""       # TCP: connecting is the check
    dns = HealthCheck(udp=True, match=StreamMatch("dns", b"\x00\x2a", expect(["~*", "health.is.good"], src)))
    assert hcmatch.probe_payload(dns) == b"\x00\x2a" and hcmatch.expects_reply(dns)
    assert hcmatch.stream_reply(dns, b"..\x06HEALTH\x02is\x04good").passed
    assert hcmatch.stream_reply(dns, b"nxdomain") == hcmatch.Verdict(
        False, 'the reply does not match "health.is.good" of match "dns"')
    literal = HealthCheck(match=StreamMatch("s", b"PING\r\n", expect(["+PONG"], src)))
    assert hcmatch.stream_reply(literal,
                                b"+PONG\r\n").passed and not hcmatch.stream_reply(literal, b"-ERR").passed
    assert not hcmatch.expects_reply(HealthCheck(udp=True))


def reply(status: int, headers: str = "", body: bytes = b"") -> hcmatch.HttpReply | None:
    return hcmatch.parse_http_reply(f"HTTP/1.1 {status} X\r\n{headers}\r\n".encode() + body)


def test_http_default_is_2xx_3xx() -> None:
    check = HealthCheck()
    assert hcmatch.http_request(check, "b").startswith(b"GET / HTTP/1.0\r\nHost: b\r\n")
    assert hcmatch.http_reply(check, reply(200)).passed and hcmatch.http_reply(check, reply(302)).passed
    assert hcmatch.http_reply(check, reply(500)) == hcmatch.Verdict(False, "status code 500")
    assert not hcmatch.http_reply(check, hcmatch.parse_http_reply(b"garbage")).passed


def test_http_match_rules() -> None:
    match = HttpMatch("welcome",
                      status=(StatusRule(((200, 200),)),),
                      headers=(HeaderRule("Content-Type", "=", "text/html"), HeaderRule("X-Down", "absent"),
                               HeaderRule("Server", "~", "", re.compile("^ngin")),
                               HeaderRule("X-Up", "present")),
                      body=BodyRule(re.compile(b"Welcome to nginx!")))
    check = HealthCheck(match=match)
    good = "Content-Type: text/html\r\nServer: nginx/1.2\r\nX-Up: 1\r\n"
    assert hcmatch.http_reply(check, reply(200, good, b"<h1>Welcome to nginx!</h1>")).passed
    assert not hcmatch.http_reply(check, reply(204, good, b"Welcome to nginx!")).passed
    assert not hcmatch.http_reply(check, reply(200, good + "X-Down: 1\r\n", b"Welcome to nginx!")).passed
    assert not hcmatch.http_reply(check,
                                  reply(200, good.replace("nginx/", "apache/"), b"Welcome to nginx!")).passed
    assert hcmatch.http_reply(check, reply(200, good, b"It works")).reason == 'body does not match "welcome"'
    # a match with status rules replaces the 2xx/3xx default
    check = HealthCheck(match=HttpMatch("err", status=(StatusRule(((500, 599),)),)))
    assert hcmatch.http_reply(check, reply(503)).passed and not hcmatch.http_reply(check, reply(200)).passed
