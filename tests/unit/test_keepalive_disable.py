"""`keepalive_disable`: which User-Agents nginx answers with Connection: close (http_keepalive.t's cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.core.http.browsers import keepalive_disabled

DEFAULT = frozenset({"msie6"})


def ua(agent: str) -> list[tuple[bytes, bytes]]:
    return [(b"Host", b"x"), (b"User-Agent", agent.encode())]


@pytest.mark.parametrize(("disable", "method", "agent", "closed"), [
    (DEFAULT, b"POST", "MSIE 5.0", True),          # nginx-tests: 'keepalive disable msie6'
    (DEFAULT, b"GET", "MSIE 5.0", False),          # msie6 matters for POST only
    (DEFAULT, b"POST", "MSIE 7.0", False),
    (DEFAULT, b"POST", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", True),
    (DEFAULT, b"POST", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", False),
    (DEFAULT, b"POST", "MSIE 5.0 Opera", False),
    (DEFAULT, b"GET", "Mac OS X Safari/7534.48.3", False),
    (frozenset({"safari"}), b"GET", "Mac OS X Safari/7534.48.3", True),
    (frozenset({"safari"}), b"GET", "Mac OS X Chrome/1 Safari/7534.48.3", False),
    (frozenset({"none"}), b"POST", "MSIE 5.0", False),
    (frozenset({"none", "msie6"}), b"POST", "MSIE 5.0", True),    # nginx's bitmask: none adds nothing
])
def test_browsers(disable: frozenset[str], method: bytes, agent: str, closed: bool) -> None:
    assert keepalive_disabled(disable, method, ua(agent)) is closed


def test_no_user_agent() -> None:
    assert not keepalive_disabled(frozenset({"msie6", "safari"}), b"POST", [])


def test_config(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("http { server { listen 127.0.0.1:9000; keepalive_disable safari msie6;\n"
                    "location / { return 200; } location /n { keepalive_disable none; return 200; } } }")
    first, second = load(str(path)).http.servers[0].locations     # type: ignore[union-attr]
    assert first.keepalive_disable == {"safari", "msie6"} and second.keepalive_disable == {"none"}
    path.write_text("http { server { listen 127.0.0.1:9000;\nkeepalive_disable opera; } }")
    with pytest.raises(ConfigError, match=r'sheer.conf:2: invalid value "opera"'):
        load(str(path))
