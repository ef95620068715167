"""sheer.config.lexfix: `${name}` followed by a blank ends the word there, as nginx's lexer ends it
(crossplane's would run on into the next argument)."""

from __future__ import annotations

from pathlib import Path

from sheer.config import load
from sheer.config.lexfix import split_joined


def test_split_joined_words() -> None:
    tokens = [("access_log", 1, False), ("/a/${x} main", 1, False), (";", 1, False),
              ("set", 2, False), ("${b}c", 2, True), ("a${b}\n", 3, False), ("x${y}\n  z${w}", 4, False)]
    assert list(split_joined(iter(tokens))) == [
        ("access_log", 1, False), ("/a/${x}", 1, False), ("main", 1, False), (";", 1, False),
        ("set", 2, False), ("${b}c", 2, True), ("a${b}", 3, False), ("x${y}", 4, False), ("z${w}", 5, False)]


def test_a_braced_variable_then_another_argument(tmp_path: Path) -> None:
    conf = tmp_path / "lb.conf"
    conf.write_text("http {\n    log_format f $uri;\n    server { listen 127.0.0.1:8080;\n"
                    "        location / { set $a ${uri} ; access_log /tmp/x_${arg_n} f; return 204; } } }\n")
    [location] = load(str(conf)).http.servers[0].locations    # type: ignore[union-attr]
    [log] = location.access_logs
    assert log.format.name == "f" and log.variable_path is not None
