"""The http ssl module's directives: nginx's defaults, inheritance, pairing and refusals (file:line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.build_tls import notices
from sheer.config.model import Config
from sheer.core.http.headers import Headers
from sheer.core.http.variables import Connection, RequestVariables, TlsInfo


def loaded(tmp_path: Path, server: str, http: str = "") -> Config:
    path = tmp_path / "sheer.conf"
    path.write_text(f"http {{\n{http}\nserver {{\n{server}\nlocation / {{ return 200; }}\n}}\n}}\n")
    return load(str(path))


def refused(tmp_path: Path, server: str, http: str = "") -> str:
    with pytest.raises(ConfigError) as info:
        loaded(tmp_path, server, http)
    return str(info.value)


def test_defaults_are_nginx_s(tmp_path: Path) -> None:
    config = loaded(tmp_path, "listen 8443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key;")
    assert config.http is not None
    server = config.http.servers[0]
    listen = server.listens[0]
    assert (listen.port, listen.ssl, listen.http2) == (8443, True, False)
    tls = server.tls
    assert tls is not None
    assert tls.certificates[0].certificate == str(tmp_path / "a.crt")     # from the config's directory
    assert tls.protocols == ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    assert tls.ciphers == "HIGH:!aNULL:!MD5"
    assert (tls.session_cache.mode, tls.session_timeout, tls.session_tickets) == ("none", 300.0, True)
    assert (tls.verify_client, tls.verify_depth, tls.ecdh_curve) == ("off", 1, "auto")


def test_http_level_settings_are_inherited_and_certificates_pair_in_order(tmp_path: Path) -> None:
    config = loaded(tmp_path, "listen 443 ssl; ssl_protocols TLSv1.3;",
                    "ssl_certificate /c/rsa.crt; ssl_certificate_key /c/rsa.key; ssl_certificate /c/ec.crt;"
                    "ssl_certificate_key /c/ec.key; ssl_session_cache builtin:1000 shared:SSL:10m;"
                    "ssl_session_timeout 1h; ssl_prefer_server_ciphers on;")
    assert config.http is not None
    tls = config.http.servers[0].tls
    assert tls is not None
    assert [(pair.certificate, pair.key) for pair in tls.certificates] == [
        ("/c/rsa.crt", "/c/rsa.key"), ("/c/ec.crt", "/c/ec.key")]
    assert tls.protocols == ("TLSv1.3",)
    assert (tls.session_cache.builtin, tls.session_cache.shared) == (1000, "SSL")
    assert (tls.session_timeout, tls.prefer_server_ciphers) == (3600.0, True)
    assert any('"ssl_session_cache shared:SSL"' in notice for notice in notices(config))


@pytest.mark.parametrize(("server", "message"), [
    ("listen 443 ssl;", ':4: no "ssl_certificate" is defined for the "listen ... ssl" directive'),
    ("listen 443 ssl; ssl_certificate a.crt;",
     ':4: no "ssl_certificate_key" is defined for certificate "a.crt"'),
    ("listen 443 ssl; ssl_certificate a; ssl_certificate_key a; ssl_protocols TLSv9;",
     ':4: invalid value "TLSv9" in "ssl_protocols" directive'),
    ("listen 443 ssl; ssl_certificate a; ssl_certificate_key a; ssl_session_cache shared:SSL;",
     ':4: invalid session cache "shared:SSL"'),
    ("listen 443 ssl; ssl_certificate a; ssl_certificate_key a; ssl_session_cache shared:SSL:1k;",
     ':4: session cache "shared:SSL:1k" is too small'),
    ("listen 443 ssl; ssl_certificate a; ssl_certificate_key a; ssl_verify_client maybe;",
     (':4: invalid value "maybe" in "ssl_verify_client" directive, it must be "on", "off", "optional" or '
      '"optional_no_ca"')),
    ("listen 443 ssl; ssl_certificate a; ssl_certificate_key a; ssl_verify_client on;",
     ":4: no ssl_client_certificate for ssl_verify_client"),
    ("listen 443 ssl udp;", ':4: "ssl" parameter is incompatible with "udp"'),
])
def test_refusals_name_the_line(tmp_path: Path, server: str, message: str) -> None:
    assert refused(tmp_path, server).endswith(message)


def test_stream_ssl_and_proxy_ssl(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("stream {\nssl_certificate a; ssl_certificate_key a;\n"
                    "server { listen 9000 ssl; proxy_ssl on; proxy_ssl_name up.test;\n"
                    "         proxy_pass 127.0.0.1:1; }\n"
                    "server { listen 9001 ssl; proxy_pass $ssl_preread_server_name; }\n}\n")
    config = load(str(path))
    assert config.stream is not None
    first, second = config.stream.servers
    assert first.tls is not None and first.tls.certificates[0].key == str(tmp_path / "a")
    assert first.proxy_ssl is not None and first.proxy_ssl.name == "up.test"
    assert first.ssl_handshake_timeout == 60.0
    assert second.tls is not None and second.proxy_pass_url is not None and second.proxy_ssl is None
    path.write_text("stream {\nserver { listen 9000 ssl; proxy_pass 127.0.0.1:1; }\n}\n")
    with pytest.raises(ConfigError, match='no "ssl_certificate" is defined for the "listen ... ssl"'):
        load(str(path))
    path.write_text("stream {\nserver { listen 9000; proxy_ssl on; proxy_half_close on;\n"
                    "         proxy_pass 127.0.0.1:1; }\n}\n")
    with pytest.raises(ConfigError, match='"proxy_half_close on" is not supported yet in a stream server'):
        load(str(path))


def test_http2_is_accepted_with_a_notice(tmp_path: Path) -> None:
    config = loaded(tmp_path, "listen 443 ssl http2; http2 on; ssl_certificate a; ssl_certificate_key a;")
    said = notices(config)
    assert len(said) == 2 and all("HTTP/2 is not served yet" in notice for notice in said)


def test_scheme_and_ssl_variables() -> None:
    conn = Connection(("192.0.2.1", 5000), ("192.0.2.2", 443), 1, "host", 1)
    request = RequestVariables(conn, b"GET", "/", "/", "", "HTTP/1.1", Headers([]), "a.test", "a.test", 10,
                               0.0)
    assert (request.variable("scheme"), request.variable("https"), request.variable("ssl_protocol")) == (
        "http", "", "")
    cert = {"subject": ((("commonName", "client"),), (("organizationName", "Org"),))}
    conn.tls = TlsInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", "a.test", True, cert, b"der")
    assert [request.variable(name) for name in ("scheme", "https", "ssl_protocol", "ssl_cipher",
                                                "ssl_server_name", "ssl_session_reused", "ssl_client_s_dn",
                                                "ssl_client_verify")] == [
        "https", "on", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "a.test", "r", "O=Org,CN=client", "SUCCESS"]


def test_every_ssl_variable_has_a_value() -> None:
    from sheer.config.template import SSL_VARIABLES
    from sheer.core.tls_vars import VARIABLES

    assert set(VARIABLES) == SSL_VARIABLES


def test_password_file_crl_conf_commands_and_reject_are_merged_as_nginx(tmp_path: Path) -> None:
    config = loaded(tmp_path, "listen 443 ssl; ssl_conf_command Options -SessionTicket;"
                              "ssl_conf_command Certificate other.crt; ssl_crl revoked.crl;",
                    "ssl_certificate a.crt; ssl_certificate_key a.key; ssl_password_file pw;"
                    "ssl_conf_command Options SessionTicket;")
    assert config.http is not None
    tls = config.http.servers[0].tls
    assert tls is not None
    assert tls.password_file == str(tmp_path / "pw")
    assert tls.crl == str(tmp_path / "revoked.crl")
    # the innermost level's lines only, a file argument taken from the configuration's directory
    assert tls.conf_commands == (("Options", "-SessionTicket"), ("Certificate", str(tmp_path / "other.crt")))
    # a default server with ssl_reject_handshake needs no certificate; one with neither gets no context
    rejecting = loaded(tmp_path, "listen 443 ssl; ssl_reject_handshake on;")
    assert rejecting.http is not None and rejecting.http.servers[0].tls is not None
    assert rejecting.http.servers[0].tls.reject_handshake


@pytest.mark.parametrize(("directive", "feature"), [
    ("ssl_stapling on;", "OCSP stapling"),
    ("ssl_ocsp on;", "OCSP checks of client certificates"),
    ("ssl_early_data on;", "TLS 1.3 early data"),
])
def test_what_python_cannot_do_is_refused_by_name(tmp_path: Path, directive: str, feature: str) -> None:
    message = refused(tmp_path, "listen 443 ssl; ssl_certificate a; ssl_certificate_key a; " + directive)
    name = directive.split()[0]
    assert f':4: "{name}" is not supported by sheer ({feature}' in message


def test_strip_port_of_a_rendered_proxy_ssl_name() -> None:
    from sheer.core.tls_names import strip_port

    assert [strip_port(name) for name in ("a.test:8443", "a.test", "[::1]:443", "[::1]", "::1")] == [
        "a.test", "a.test", "[::1]", "[::1]", "::1"]
