"""`return`: its forms as nginx reads them, and redirects made absolute as nginx's header filter does."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import HttpReturn
from sheer.core.http.pages import absolute_location


def returned(tmp_path: Path, line: str) -> HttpReturn:
    path = tmp_path / "lb.conf"
    path.write_text(f"http {{ server {{ listen 127.0.0.1:8080; location / {{ {line} }} }} }}\n")
    config = load(str(path))
    assert config.http is not None
    found = config.http.servers[0].locations[0].return_
    assert found is not None
    return found


@pytest.mark.parametrize(("line", "code", "text"), [
    ("return 200;", 200, None),
    ('return 200 "hello $uri";', 200, "hello $uri"),
    ("return 404;", 404, None),
    ("return 301 /new;", 301, "/new"),
    ("return https://example.com/;", 302, "https://example.com/"),
    ("return $scheme://example.com$request_uri;", 302, "$scheme://example.com$request_uri"),
    ("return 444;", 444, None),
])
def test_forms(tmp_path: Path, line: str, code: int, text: str | None) -> None:
    found = returned(tmp_path, line)
    assert found.code == code and (found.text.text if found.text is not None else None) == text


@pytest.mark.parametrize("line", ["return 1000;", "return abc;", 'return /relative "x";', "return ok text;"])
def test_bad_codes(tmp_path: Path, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        returned(tmp_path, line)
    assert info.value.message.startswith("invalid return code")


def test_relative_redirects_become_absolute() -> None:
    assert absolute_location(b"/new?a=1", "example.com", "8080") == b"http://example.com:8080/new?a=1"
    assert absolute_location(b"/new", "example.com", "80") == b"http://example.com/new"
    assert absolute_location(b"https://elsewhere/", "example.com", "8080") == b"https://elsewhere/"
