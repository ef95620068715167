"""valid_referers and $invalid_referer (ngx_http_referer_module): names, wildcards, URI prefixes,
regexes, none/blocked, server_names, inheritance, and nginx's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import Location
from sheer.core.http.referer import invalid_referer


def locations(tmp_path: Path, server: str) -> dict[str, Location]:
    path = tmp_path / "lb.conf"
    path.write_text("http { server { listen 127.0.0.1:8080; " + server + " } }\n")
    config = load(str(path))
    assert config.http is not None
    return {location.path: location for location in config.http.servers[0].locations}


def test_names_wildcards_uris_and_regexes(tmp_path: Path) -> None:
    found = locations(tmp_path, r"""server_name localhost ~^re\d$;
        location /a { valid_referers www.example.org *.example.com www.example.* example.net/img/ ~\.google\.;
                      return 200; }
        location /n { valid_referers none blocked server_names; return 200; }
        location /i { return 200; }""")
    a, n = found["/a"].referers, found["/n"].referers
    valid = [
        (a, "http://www.example.org"), (a, "https://WWW.Example.ORG:8080/x"), (a, "http://a.b.example.com/"),
        (a, "http://www.example.co.uk"), (a, "http://example.net/img/cat.png"), (a, "http://www.google.fr/?q"),
        (n, None), (n, "example.com"), (n, "http://su"), (n, "http://localhost/x"), (n, "http://re7/x"),
    ]
    invalid = [
        (a, None), (a, "example.com"), (a, "http://example.com"), (a, "http://example.net/img"),
        (a, "http://example.net/IMG/x"), (a, "http://www.example.org." + "a" * 256),
        (n, "http://re77"), (n, "http://other.test"),
    ]
    assert [invalid_referer(refs, value) for refs, value in valid] == [""] * len(valid)
    assert [invalid_referer(refs, value) for refs, value in invalid] == ["1"] * len(invalid)
    assert found["/i"].referers is None and invalid_referer(None, "http://anything") == ""


def test_a_location_inherits_its_server_s(tmp_path: Path) -> None:
    found = locations(tmp_path, """valid_referers example.org; valid_referers example.com;
        location /in { return 200; }
        location /own { valid_referers own.test; return 200; }""")
    inner, own = found["/in"].referers, found["/own"].referers
    assert invalid_referer(inner, "http://example.com") == "" == invalid_referer(inner, "http://example.org")
    assert invalid_referer(own, "http://example.com") == "1"


@pytest.mark.parametrize(("server", "message"), [
    ('location / { valid_referers none; }',
     ('the "none" or "blocked" referers are specified in the "valid_referers" directive without any valid '
      "referer")),
    ('location / { valid_referers ""; }', 'invalid referer ""'),
    ("location / { valid_referers a.test a.test; }", 'conflicting parameter "a.test"'),
    ("location / { valid_referers www.*.test; }", 'invalid hostname or wildcard "www.*.test"'),
    ("location / { valid_referers ~(x; }", None),
])
def test_nginx_errors(tmp_path: Path, server: str, message: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        locations(tmp_path, server)
    if message is not None:
        assert info.value.message == message
    else:
        assert "does not compile" in info.value.message
