"""`keepalive_disable msie6 | safari | none`: the browsers nginx answers with `Connection: close`, known by
their User-Agent as nginx's ngx_http_process_user_agent tells them."""

from __future__ import annotations


def keepalive_disabled(disable: frozenset[str], method: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """MSIE 4 to 6 (6 without SV1) only for POST requests; Safari on Mac OS X for every request."""
    post = method == b"POST"
    if not post and "safari" not in disable:
        return False           # the common case: no User-Agent to look at
    agent = user_agent(headers)
    if post and "msie6" in disable and msie6(agent):
        return True
    return "safari" in disable and safari(agent)


def user_agent(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"user-agent":
            return value
    return b""


def msie6(agent: bytes) -> bool:
    at = agent.find(b"MSIE ")
    if at < 0 or at + 7 >= len(agent) or b"Opera" in agent:
        return False
    if agent[at + 6:at + 7] != b".":
        return False
    major = agent[at + 5:at + 6]
    return major in (b"4", b"5") or (major == b"6" and agent.find(b"SV1", at + 8) < 0)


def safari(agent: bytes) -> bool:
    if b"Opera" in agent or _msie(agent) or b"Gecko/" in agent or b"Chrome/" in agent:
        return False
    return b"Safari/" in agent and b"Mac OS X" in agent


def _msie(agent: bytes) -> bool:
    at = agent.find(b"MSIE ")
    return at >= 0 and at + 7 < len(agent)
