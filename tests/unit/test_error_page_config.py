"""error_page read as ngx_http_core_error_page: codes, `=`/`=CODE`, the target's kind, nginx's errors,
the innermost level's lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.error_pages import OWN_STATUS, find
from sheer.config.model import Location


def locations(tmp_path: Path, text: str) -> list[Location]:
    path = tmp_path / "sheer.conf"
    path.write_text(f"events {{}}\nhttp {{\n{text}\n}}\n")
    config = load(str(path))
    assert config.http is not None
    return list(config.http.servers[0].locations)


def test_forms_and_inheritance(tmp_path: Path) -> None:
    a, b, named = locations(tmp_path, """error_page 404 /404.html;
        server { listen 127.0.0.1:80;
            error_page 500 502 503 504 =200 /50x.html;
            location /a { return 204; }
            location /b { error_page 404 = @fallback; error_page 403 =301 http://example.com/$uri;
                          return 204; }
            location @fallback { return 200; } }""")
    page = find(a.error_pages, 502)
    assert page is not None and page.overwrite == 200 and page.kind == "uri" and page.codes >= {500, 504}
    assert find(a.error_pages, 404) is None           # the server level's lines replace the http level's
    fallback = find(b.error_pages, 404)
    assert fallback is not None and fallback.kind == "named" and fallback.overwrite == OWN_STATUS
    moved = find(b.error_pages, 403)
    assert moved is not None and moved.kind == "redirect" and moved.overwrite == 301
    assert find(b.error_pages, 502) is None and named.modifier == "@"


@pytest.mark.parametrize("line, message", [
    ("error_page 200 /x;", 'value "200" must be between 300 and 599'),
    ("error_page 499 /x;", 'value "499" must be between 300 and 599'),
    ("error_page abc /x;", 'invalid value "abc"'),
    ("error_page 404 =x /x;", 'invalid value "=x"'),
    ("error_page =200 /x;", 'invalid number of arguments in "error_page" directive'),
    ("error_page /x;", 'invalid number of arguments in "error_page" directive'),
])
def test_nginx_errors(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"sheer.conf:4: " + message):
        locations(tmp_path, f"server {{ listen 127.0.0.1:80;\n {line} location / {{ return 204; }} }}")
