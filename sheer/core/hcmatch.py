"""What a health probe sends and whether the reply passes: `match` blocks, sans-IO.

Stream: `send` bytes, then `expect` (a literal prefix or a regex) on what came back. UDP
without a match sends "nginx health check" and passes unless the peer refuses it (ICMP port
unreachable). HTTP: `GET uri HTTP/1.0`, then `status`/`header`/`body` rules, or 2xx/3xx.
"""

from __future__ import annotations

from dataclasses import dataclass

from sheer.config.health import DEFAULT_UDP_PROBE, HeaderRule, HealthCheck, HttpMatch, StreamMatch

BODY_LIMIT = 65536      # bytes of the body a `body` rule sees (nginx: the first buffer)


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str = ""


PASSED = Verdict(True)


def stream_match(check: HealthCheck) -> StreamMatch | None:
    return check.match if isinstance(check.match, StreamMatch) else None


def probe_payload(check: HealthCheck) -> bytes:
    """What a stream probe writes after connecting (TCP) or sends (UDP)."""
    match = stream_match(check)
    if match is not None and match.send:
        return match.send
    return DEFAULT_UDP_PROBE if check.udp else b""


def expects_reply(check: HealthCheck) -> bool:
    match = stream_match(check)
    return match is not None and match.expect is not None


def stream_reply(check: HealthCheck, data: bytes) -> Verdict:
    match = stream_match(check)
    if match is None or match.expect is None:
        return PASSED
    if match.expect.matches(data):
        return PASSED
    return Verdict(False, f'the reply does not match "{match.expect.text}" of match "{match.name}"')


def http_request(check: HealthCheck, host: str) -> bytes:
    return (f"GET {check.uri} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: sheer-health-check\r\n"
            "Connection: close\r\n\r\n").encode()


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def parse_http_reply(data: bytes) -> HttpReply | None:
    """The status, headers and body start of a response read to its end (or BODY_LIMIT)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        headers.append((name.strip(), value.strip()))
    return HttpReply(int(parts[1]), tuple(headers), body[:BODY_LIMIT])


def _header_ok(rule: HeaderRule, headers: tuple[tuple[str, str], ...]) -> bool:
    values = [value for name, value in headers if name.lower() == rule.name.lower()]
    if rule.op == "present":
        return bool(values)
    if rule.op == "absent":
        return not values
    if rule.op == "=":
        return rule.value in values
    if rule.op == "!=":
        return bool(values) and rule.value not in values
    assert rule.regex is not None
    found = any(rule.regex.search(value) for value in values)
    return found if rule.op == "~" else bool(values) and not found


def http_reply(check: HealthCheck, reply: HttpReply | None) -> Verdict:
    if reply is None:
        return Verdict(False, "upstream sent an invalid response")
    match = check.match if isinstance(check.match, HttpMatch) else None
    if (match is None or not match.status) and not 200 <= reply.status < 400:
        return Verdict(False, f"status code {reply.status}")
    if match is None:
        return PASSED
    for rule in match.status:
        if not rule.matches(reply.status):
            return Verdict(False, f'status code {reply.status} does not match "{match.name}"')
    for header in match.headers:
        if not _header_ok(header, reply.headers):
            return Verdict(False, f'header "{header.name}" does not match "{match.name}"')
    if match.body is not None and (match.body.regex.search(reply.body) is None) != match.body.negated:
        return Verdict(False, f'body does not match "{match.name}"')
    return PASSED
