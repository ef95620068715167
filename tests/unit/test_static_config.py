"""The static-file directives read as nginx reads them: root/alias inheritance and alias lengths,
index and try_files, types (Debian's mime.types) and default_type, expires, and nginx's -t messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import HttpServer
from sheer.config.static import DEFAULT_TYPES, REGEX_ALIAS, Static


def server(tmp_path: Path, text: str, http: str = "") -> HttpServer:
    path = tmp_path / "sheer.conf"
    path.write_text(f"events {{}}\nhttp {{\n{http}\nserver {{ listen 127.0.0.1:80;\n{text}\n}}\n}}\n")
    config = load(str(path), prefix=str(tmp_path))
    assert config.http is not None
    return config.http.servers[0]


def static(tmp_path: Path, text: str, http: str = "", at: int = 0) -> Static:
    found = server(tmp_path, text, http).locations[at].static
    assert found is not None
    return found


def test_defaults_are_nginx_ones(tmp_path: Path) -> None:
    files = static(tmp_path, "location / { }")
    assert files.root.text == f"{tmp_path}/html"            # `root html`, under the prefix
    assert files.alias == 0 and [t.text for t in files.index] == ["index.html"]
    assert dict(files.types) == DEFAULT_TYPES and files.default_type == "text/plain"
    assert files.etag and files.log_not_found and files.if_modified_since == "exact"
    assert files.max_ranges is None and files.expires is None and files.try_files is None
    assert files.type_of("/a/b.HTML") == "text/html" and files.type_of("/a.b/c") == "text/plain"


def test_a_location_with_a_handler_serves_no_files(tmp_path: Path) -> None:
    srv = server(tmp_path, "location /a { return 204; } location /b { proxy_pass http://127.0.0.1:81; }")
    assert all(location.static is None for location in srv.locations)
    assert srv.static is not None                          # a request no location takes: the server's files


def test_root_and_alias(tmp_path: Path) -> None:
    srv = server(tmp_path, """root /srv/www/;
        location /static/ { alias /data/static/;
            location /static/css/ { } }
        location ~ ^/img/(.+)$ { alias /data/img/$1; }
        location /r/ { root rel; }""")
    outer, inner, regex, rel = (loc.static for loc in srv.locations)
    assert outer is not None and inner is not None and regex is not None and rel is not None
    assert outer.root.text == "/data/static/" and outer.alias == len("/static/")
    assert inner.root.text == "/data/static/" and inner.alias == len("/static/")   # the outer's length
    assert regex.alias == REGEX_ALIAS and regex.regex is not None                  # $1 needs the match
    assert rel.root.text == f"{tmp_path}/rel"
    assert srv.static is not None and srv.static.root.text == "/srv/www"


def test_try_files_and_index(tmp_path: Path) -> None:
    files = static(tmp_path, "location / { index a.html /b.html; try_files $uri $uri/ /fallback; }")
    assert [t.text for t in files.index] == ["a.html", "/b.html"]
    tried = files.try_files
    assert tried is not None and tried.code is None and tried.fallback is not None
    assert [(t.text, test_dir) for t, test_dir in tried.names] == [("$uri", False), ("$uri", True)]
    coded = static(tmp_path, "location / { try_files /a/ =404; }").try_files
    assert coded is not None and coded.code == 404 and coded.names[0][1]


def test_debian_mime_types_load(tmp_path: Path) -> None:
    if not os.path.exists("/etc/nginx/mime.types"):
        pytest.skip("no /etc/nginx/mime.types")
    files = static(tmp_path, "location / { }", http="include /etc/nginx/mime.types; default_type "
                   "application/octet-stream;")
    assert files.type_of("/x.css") == "text/css" and files.type_of("/x.png") == "image/png"
    assert files.type_of("/x.unknown") == "application/octet-stream"
    # a level's own types block replaces what it inherits
    own = static(tmp_path, "location / { types { text/x-own own; } }",
                 http="include /etc/nginx/mime.types;")
    assert dict(own.types) == {"own": "text/x-own"}


def test_expires_and_flags(tmp_path: Path) -> None:
    files = static(tmp_path, "expires modified 2048; etag off; if_modified_since before; max_ranges 2;"
                   "log_not_found off; location / { }")
    assert files.expires is not None and files.expires.mode == "modified" and files.expires.seconds == 2048
    assert not files.etag and files.if_modified_since == "before" and files.max_ranges == 2
    assert not files.log_not_found
    assert static(tmp_path, "location / { expires off; }").expires is None
    var = static(tmp_path, "location / { expires $arg_e; }").expires
    assert var is not None and var.value is not None


@pytest.mark.parametrize(("text", "message"), [
    ("location / { root /a; alias /b; }", '"alias" directive is duplicate, "root" directive was specified'),
    ("location @x { alias /b; }", 'the "alias" directive cannot be used inside the named location'),
    ("location / { root $document_root/x; }", "the $document_root variable cannot be used"),
    ("location / { try_files $uri =abc; }", 'invalid code "=abc"'),
    ("location / { try_files $uri; }", 'invalid number of arguments in "try_files" directive'),
    ("location / { index /a.html b.html; }", 'only the last index in "index" directive should be absolute'),
    ("location / { expires @1h modified; }", '"expires" directive invalid value'),
    ("location / { expires modified @1h; }", 'daily time cannot be used with "modified" parameter'),
    ("location / { expires @25h; }", "daily time value must be less than 24 hours"),
    ("location / { if_modified_since sometimes; }", 'invalid value "sometimes" in "if_modified_since"'),
    ("location / { etag maybe; }", 'invalid value "maybe" in "etag" directive'),
    ("location / { disable_symlinks if_not_owner; }", "is not supported"),
    ("location / { types { text/html html; } types { } root /a; root /b; }", '"root" directive is duplicate'),
])
def test_nginx_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        server(tmp_path, text)
    assert message in str(caught.value) and "sheer.conf:" in str(caught.value)
