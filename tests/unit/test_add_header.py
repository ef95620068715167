"""add_header: nginx's statuses, `always`, empty values, the headers it replaces, its inheritance."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import AddHeader
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, compile_template
from sheer.core.http.add_header import added
from sheer.core.http.headers import response_head


class Vars:
    def __init__(self, **values: str) -> None:
        self.values = values

    def variable(self, name: str) -> str:
        return self.values.get(name, "")


def header(name: str, value: str, always: bool = False) -> AddHeader:
    return AddHeader(name, compile_template(value, None, HTTP_VARIABLES, HTTP_PREFIXES), always)


ENTRIES = (header("X-URI", "$uri"), header("X-Always", "$uri", always=True), header("X-Empty", "$arg_none"))


@pytest.mark.parametrize("status", [200, 201, 204, 206, 301, 302, 303, 304, 307, 308])
def test_success_statuses_get_every_header(status: int) -> None:
    lines, replaced = added(ENTRIES, status, Vars(uri="/a"))
    assert lines == [(b"X-URI", b"/a"), (b"X-Always", b"/a")] and not replaced


@pytest.mark.parametrize("status", [100, 202, 300, 305, 400, 404, 500, 502])
def test_other_statuses_only_the_always_ones(status: int) -> None:
    assert added(ENTRIES, status, Vars(uri="/a"))[0] == [(b"X-Always", b"/a")]


def test_etag_and_last_modified_replace_the_response_s_own() -> None:
    entries = (header("ETag", "foo", always=True), header("Last-Modified", ""))
    lines, replaced = added(entries, 200, Vars())
    assert lines == [(b"ETag", b"foo")] and replaced == {b"etag", b"last-modified"}
    head = response_head(200, b"OK", [(b"ETag", b'"upstream"'), (b"Last-Modified", b"x"), (b"X-A", b"1")],
                         server=b"sheer", date=b"d", content_length=0, chunked=False, keepalive=False,
                         added=lines, replaced=replaced)
    assert head == (b"HTTP/1.1 200 OK\r\nServer: sheer\r\nDate: d\r\nX-A: 1\r\nETag: foo\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n")


def test_another_name_is_one_more_line() -> None:
    lines, _ = added((header("Cache-Control", "no-cache"),), 200, Vars())
    head = response_head(200, b"OK", [(b"Cache-Control", b"max-age=5")], server=b"s", date=b"d",
                         content_length=None, chunked=True, keepalive=True, added=lines)
    assert b"Cache-Control: max-age=5\r\nCache-Control: no-cache\r\n" in head


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return load(str(path))


def test_a_level_with_add_header_replaces_the_outer_ones(tmp_path: Path) -> None:
    config = _load(tmp_path, """http {
        add_header X-Http 1;
        server {
            listen 127.0.0.1:8080;
            add_header X-Server 2 always;
            location /inherits { return 200; }
            location /own { add_header X-Own 3; return 200; }
        }
        server { listen 127.0.0.1:8081; location / { return 200; } }
    }""")
    assert config.http is not None
    first, second = config.http.servers
    inherits, own = first.locations
    assert [(h.name, h.always) for h in inherits.add_headers] == [("X-Server", True)]
    assert [(h.name, h.always) for h in own.add_headers] == [("X-Own", False)]
    assert [h.name for h in second.locations[0].add_headers] == ["X-Http"]


@pytest.mark.parametrize(("line", "message"), [
    ("add_header X-A 1 sometimes;", 'invalid parameter "sometimes"'),
    ("add_header X-A;", 'invalid number of arguments in "add_header" directive'),
    ("add_header X-A $nonexistent_thing;", 'unknown "nonexistent_thing" variable'),
])
def test_bad_add_header(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f"http {{\n    server {{ listen 1; {line} location / {{ return 200; }} }}\n}}\n")
    assert str(info.value) == f"{tmp_path}/lb.conf:2: {message}"


def test_a_later_etag_line_replaces_an_earlier_one() -> None:
    # headers.t: `add_header ETag foo always; add_header ETag '' always;` sends no ETag at all
    from sheer.config.model import AddHeader
    from sheer.config.template import Template
    from sheer.core.http.add_header import added
    from sheer.core.variables import MappingSource
    entries = [AddHeader("ETag", Template(("foo",), "foo"), True), AddHeader("ETag", Template((), ""), True)]
    assert added(entries, 404, MappingSource({})) == ([], frozenset({b"etag"}))
