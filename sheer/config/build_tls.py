"""The merged ssl settings of an http server (nginx's ngx_http_ssl_merge_srv_conf), and what `sheer -t`
notes about the ones sheer accepts but serves otherwise than nginx."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from sheer.config.errors import ConfigError, Source
from sheer.config.model import Config, Listen, StreamServer, Upstream
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, STREAM_VARIABLES, compile_template
from sheer.config.tls import (
    DEFAULT_CIPHERS,
    DEFAULT_PROTOCOLS,
    CertificatePair,
    ServerTls,
    SessionCache,
    UpstreamTls,
)
from sheer.config.tree import Block


def full_path(path: str, source: Source | None) -> str:
    """nginx's ngx_conf_full_name(conf_prefix): a relative file is taken from the configuration's
    directory."""
    if os.path.isabs(path) or source is None or source.file.startswith("<"):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(source.file)), path)


def _first(chain: list[Block], key: str) -> tuple[Any, Source | None] | None:
    for block in chain:
        if key in block.settings:
            return block.settings[key], block.sources.get(key)
    return None


def _value(chain: list[Block], key: str, default: Any) -> Any:
    found = _first(chain, key)
    return default if found is None else found[0]


def _file(chain: list[Block], key: str) -> str | None:
    found = _first(chain, key)
    return None if found is None else full_path(found[0][0], found[1])


# SSL_CONF commands naming a file or directory: taken from the configuration's directory, as nginx finds them
_CONF_FILES = frozenset({"Certificate", "PrivateKey", "ChainCAFile", "ChainCAPath", "VerifyCAFile",
                         "VerifyCAPath", "RequestCAFile", "ClientCAFile", "ClientCAPath", "ServerInfoFile",
                         "DHParameters"})


def _conf_commands(chain: list[Block], key: str) -> tuple[tuple[str, str], ...]:
    """ssl_conf_command lines of the innermost level that has any (nginx merges the array whole)."""
    for block in chain:
        if key in block.settings:
            return tuple((args[0], full_path(args[1], src) if args[0] in _CONF_FILES else args[1])
                         for args, src in block.settings[key])
    return ()


def _certificates(chain: list[Block], where: Source | None) -> tuple[CertificatePair, ...]:
    """nginx: the certificates and keys of the innermost level that has any, paired in order."""
    for block in chain:
        certs = block.settings.get("ssl_certificate", [])
        keys = block.settings.get("ssl_certificate_key", [])
        if not certs and not keys:
            continue
        if len(keys) < len(certs):
            cert, src = certs[len(keys)]
            raise ConfigError(f'no "ssl_certificate_key" is defined for certificate "{cert[0]}"', src)
        if len(certs) < len(keys):
            raise ConfigError(f'no "ssl_certificate" is defined for key "{keys[len(certs)][0][0]}"',
                              keys[len(certs)][1])
        return tuple(CertificatePair(full_path(cert[0][0], cert[1]), full_path(key[0][0], key[1]), cert[1])
                     for cert, key in zip(certs, keys, strict=True))
    return ()


def server_tls(chain: list[Block], ssl_listens: list[Source | None],
               default_server: bool) -> ServerTls | None:
    """The merged ssl settings of a server (chain: server block, then http block); None when the server
    has no `listen ... ssl` and no certificate (nothing to serve TLS with)."""
    certificates = _certificates(chain, chain[0].source)
    reject = _value(chain, "ssl_reject_handshake", False)
    if not certificates and not reject:     # nginx: no SSL_CTX; SNI naming it keeps the default's
        if ssl_listens and default_server:
            raise ConfigError('no "ssl_certificate" is defined for the "listen ... ssl" directive',
                              ssl_listens[0])
        return None
    keys = [(path[0], src) for block in chain
            for path, src in block.settings.get("ssl_session_ticket_key", [])]
    verify = _value(chain, "ssl_verify_client", "off")
    client_ca = _file(chain, "ssl_client_certificate")
    if verify in ("on", "optional") and client_ca is None and _file(chain, "ssl_trusted_certificate") is None:
        found = _first(chain, "ssl_verify_client")
        raise ConfigError('no ssl_client_certificate for ssl_verify_client', found[1] if found else None)
    return ServerTls(
        certificates=certificates,
        protocols=_value(chain, "ssl_protocols", DEFAULT_PROTOCOLS),
        ciphers=_value(chain, "ssl_ciphers", [DEFAULT_CIPHERS])[0],
        prefer_server_ciphers=_value(chain, "ssl_prefer_server_ciphers", False),
        session_cache=_value(chain, "ssl_session_cache", SessionCache()),
        session_timeout=_value(chain, "ssl_session_timeout", 300.0),
        session_tickets=_value(chain, "ssl_session_tickets", True),
        session_ticket_keys=tuple(full_path(path, src) for path, src in keys),
        dhparam=_file(chain, "ssl_dhparam"),
        ecdh_curve=_value(chain, "ssl_ecdh_curve", ["auto"])[0],
        client_certificate=client_ca,
        trusted_certificate=_file(chain, "ssl_trusted_certificate"),
        verify_client=verify,
        verify_depth=_value(chain, "ssl_verify_depth", 1),
        password_file=_file(chain, "ssl_password_file"),
        crl=_file(chain, "ssl_crl"),
        reject_handshake=reject,
        conf_commands=_conf_commands(chain, "ssl_conf_command"),
        source=chain[0].source,
    )


def upstream_tls(chain: list[Block], host: str, source: Source,
                 known: frozenset[str] = HTTP_VARIABLES) -> UpstreamTls:
    """`proxy_pass https://HOST...`: the location's proxy_ssl_* settings (inherited as nginx's)."""
    name = _value(chain, "proxy_ssl_name", [host])[0]
    prefixes = HTTP_PREFIXES if known is HTTP_VARIABLES else ()
    name_vars = None
    if "$" in name:         # rendered per connection (its port stripped, as nginx's)
        found = _first(chain, "proxy_ssl_name")
        name_vars = compile_template(name, (found[1] if found else None) or source, known, prefixes)
    verify = _value(chain, "proxy_ssl_verify", False)
    trusted = _file(chain, "proxy_ssl_trusted_certificate")
    if verify and trusted is None:
        found = _first(chain, "proxy_ssl_verify")
        raise ConfigError("no proxy_ssl_trusted_certificate for proxy_ssl_verify",
                          found[1] if found else source)
    cert = _file(chain, "proxy_ssl_certificate")
    key = _file(chain, "proxy_ssl_certificate_key")
    templates = None
    if cert is not None and key is not None and ("$" in cert or "$" in key):
        found_cert = _first(chain, "proxy_ssl_certificate")
        found_key = _first(chain, "proxy_ssl_certificate_key")
        assert found_cert is not None and found_key is not None
        templates = (compile_template(found_cert[0][0], found_cert[1] or source, known, prefixes),
                     compile_template(found_key[0][0], found_key[1] or source, known, prefixes))
        cert = key = None
    if cert is not None and key is None:
        found = _first(chain, "proxy_ssl_certificate")
        raise ConfigError(f'no "proxy_ssl_certificate_key" is defined for certificate "{cert}"',
                          found[1] if found else source)
    return UpstreamTls(
        name=name.rsplit(":", 1)[0] if not name.startswith("[") else name,
        server_name=_value(chain, "proxy_ssl_server_name", False),
        verify=verify,
        trusted_certificate=trusted,
        verify_depth=_value(chain, "proxy_ssl_verify_depth", 1),
        protocols=_value(chain, "proxy_ssl_protocols", DEFAULT_PROTOCOLS),
        ciphers=_value(chain, "proxy_ssl_ciphers", ["DEFAULT"])[0],
        certificate=CertificatePair(cert, key, source) if cert is not None and key is not None else None,
        session_reuse=_value(chain, "proxy_ssl_session_reuse", True),
        password_file=_file(chain, "proxy_ssl_password_file"),
        crl=_file(chain, "proxy_ssl_crl"),
        conf_commands=_conf_commands(chain, "proxy_ssl_conf_command"),
        certificate_vars=templates,
        name_vars=name_vars,
        directory=os.path.dirname(full_path("x", source)),
        source=source,
    )


def stream_tls(chain: list[Block], listens: tuple[Listen, ...]) -> ServerTls | None:
    """A stream server's ssl settings, when it has a `listen ... ssl` (nginx's ngx_stream_ssl_module)."""
    ssl = [listen.source for listen in listens if listen.ssl]
    if not ssl:
        return None
    tls = server_tls(chain, ssl, True)
    # nginx's stream ssl offers ALPN only with ssl_alpn (ngx_stream_ssl_alpn_select)
    return None if tls is None else replace(tls, alpn=tuple(_value(chain, "ssl_alpn", [])), alpn_strict=True)


def stream_proxy_ssl(chain: list[Block], upstream: Upstream | None, source: Source) -> UpstreamTls | None:
    """`proxy_ssl on` (stream) in a server with `proxy_pass`: the proxy_ssl_* settings, the name defaulting
    to the proxy_pass host (a `return` server inherits it to no effect, as nginx's)."""
    found = _first(chain, "proxy_ssl")
    if found is None or not found[0]:
        return None
    if upstream is None:
        raise ConfigError('"proxy_ssl on" needs "proxy_pass" to an upstream or an address, not a variable',
                          found[1])
    return upstream_tls(chain, upstream.name, source, STREAM_VARIABLES)


def check_stream_tls(server: StreamServer) -> StreamServer:
    """What sheer's TLS stream relay (sheer.io.stream_tls) does not do yet is refused, never ignored."""
    if server.tls is None and server.proxy_ssl is None:
        return server
    unsupported = [
        ("listen ... proxy_protocol", any(listen.proxy_protocol for listen in server.listens)),
        ("proxy_half_close on", server.proxy_half_close),
        ("proxy_responses", server.proxy_responses is not None),
        ("proxy_requests", server.proxy_requests != 0),
        ("ssl_preread on", server.ssl_preread),
        ("health_check", server.health_check is not None),
    ]
    for what, used in unsupported:
        if used:
            raise ConfigError(f'"{what}" is not supported yet in a stream server with "listen ... ssl" or '
                              '"proxy_ssl on"', server.source)
    return server


def notices(config: Config) -> list[str]:
    """What `sheer -t` says about the ssl settings it accepts but serves otherwise than nginx."""
    found: list[str] = []
    for server in (config.http.servers if config.http else ()):
        for listen in server.listens:
            if listen.http2:
                found.append(f'{listen.source}: "listen ... http2" is accepted, but HTTP/2 is not served '
                             "yet: clients negotiate HTTP/1.1 (ALPN http/1.1)")
        if server.http2:
            found.append(f'{server.source}: "http2 on" is accepted, but HTTP/2 is not served yet: clients '
                         "negotiate HTTP/1.1 (ALPN http/1.1)")
        tls = server.tls
        if tls is None:
            continue
        cache = tls.session_cache
        if cache.shared is not None:
            found.append(f'{cache.source}: "ssl_session_cache shared:{cache.shared}": each worker keeps its '
                         "own session cache (Python's ssl module has no session callbacks to share one); "
                         "session tickets resume across workers")
        if len(tls.session_ticket_keys) > 1:
            found.append(f"{tls.source}: only the first ssl_session_ticket_key is used, to encrypt and to "
                         "decrypt; tickets made with the others are not resumed")
        if tls.verify_client == "optional_no_ca":
            found.append(f'{tls.source}: "ssl_verify_client optional_no_ca" verifies like "optional": a '
                         "certificate that fails verification ends the handshake")
    return found
