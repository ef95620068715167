"""The http ssl module's directives (nginx's ngx_http_ssl_module) and the frozen TLS settings of a server.

Only files are named here: the certificates and keys are read, and the OpenSSL contexts made, by
sheer.io.tls in the master (before the workers fork, as nginx's master does), so that `sheer -t` and
a reload read them the same way and a key readable only by root still serves unprivileged workers."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sheer.config.errors import ConfigError, Source
from sheer.config.tree import Block
from sheer.config.values import parse_flag, parse_number, parse_size, parse_time

if TYPE_CHECKING:
    from sheer.config.model import Config

VerifyClient = Literal["off", "on", "optional", "optional_no_ca"]
PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# nginx 1.22's defaults (ngx_http_ssl_merge_srv_conf)
DEFAULT_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
DEFAULT_CIPHERS = "HIGH:!aNULL:!MD5"


@dataclass(frozen=True, slots=True)
class CertificatePair:
    certificate: str             # absolute path (relative ones are taken from the config file's directory)
    key: str
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class SessionCache:
    """`ssl_session_cache off | none | [builtin[:size]] [shared:name:size]`."""

    mode: Literal["off", "none", "on"] = "none"
    builtin: int | None = None   # sessions kept by each worker's OpenSSL cache (None: OpenSSL's 20480)
    shared: str | None = None    # the zone's name: a cache shared by the workers (see docs/tls.md)
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A server's ssl settings (http and server levels merged); what its OpenSSL context is made of."""

    certificates: tuple[CertificatePair, ...] = ()
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    ciphers: str = DEFAULT_CIPHERS
    prefer_server_ciphers: bool = False
    session_cache: SessionCache = SessionCache()
    session_timeout: float = 300.0
    session_tickets: bool = True
    session_ticket_keys: tuple[str, ...] = ()
    dhparam: str | None = None
    ecdh_curve: str = "auto"
    client_certificate: str | None = None
    trusted_certificate: str | None = None
    verify_client: VerifyClient = "off"
    verify_depth: int = 1
    source: Source | None = None


def _protocols(args: list[str], src: Source) -> tuple[str, ...]:
    for word in args:
        if word not in PROTOCOLS:
            raise ConfigError(f'invalid value "{word}" in "ssl_protocols" directive', src)
    return tuple(args)


def _session_cache(args: list[str], src: Source) -> SessionCache:
    """nginx's ngx_http_ssl_session_cache: the same words, the same refusals."""
    if args == ["off"] or args == ["none"]:
        return SessionCache(args[0], source=src)     # type: ignore[arg-type]
    builtin: int | None = None
    shared: str | None = None
    for word in args:
        if word == "builtin":
            builtin = 20480
        elif word.startswith("builtin:"):
            builtin = parse_number(word[8:], "ssl_session_cache", src, 1)
        elif word.startswith("shared:"):
            name, _, size = word[7:].partition(":")
            if not name or not size:
                raise ConfigError(f'invalid session cache "{word}"', src)
            if parse_size(size, "ssl_session_cache", src) < 8 * 4096:
                raise ConfigError(f'session cache "{word}" is too small', src)
            shared = name
        else:
            raise ConfigError(f'invalid session cache "{word}"', src)
    return SessionCache("on", builtin, shared, src)


def _verify_client(args: list[str], src: Source) -> str:
    if args[0] not in ("on", "off", "optional", "optional_no_ca"):
        raise ConfigError(f'invalid value "{args[0]}" in "ssl_verify_client" directive, '
                          'it must be "on", "off", "optional" or "optional_no_ca"', src)
    return args[0]


def _one(parse: Callable[[str, str, Source], Any], name: str) -> Callable[[list[str], Source], Any]:
    return lambda args, src: parse(args[0], name, src)


SERVER_LEVELS = frozenset({"http", "http.server"})
# name, contexts, (min, max) arguments, converter (None: the words as written), may repeat
DIRECTIVES: tuple[tuple[str, frozenset[str], tuple[int, int | None], Any, bool], ...] = (
    ("ssl_certificate", SERVER_LEVELS, (1, 1), None, True),
    ("ssl_certificate_key", SERVER_LEVELS, (1, 1), None, True),
    ("ssl_protocols", SERVER_LEVELS, (1, None), _protocols, False),
    ("ssl_ciphers", SERVER_LEVELS, (1, 1), None, False),
    ("ssl_prefer_server_ciphers", SERVER_LEVELS, (1, 1), _one(parse_flag, "ssl_prefer_server_ciphers"), False),
    ("ssl_session_cache", SERVER_LEVELS, (1, 2), _session_cache, False),
    ("ssl_session_timeout", SERVER_LEVELS, (1, 1), _one(parse_time, "ssl_session_timeout"), False),
    ("ssl_session_tickets", SERVER_LEVELS, (1, 1), _one(parse_flag, "ssl_session_tickets"), False),
    ("ssl_session_ticket_key", SERVER_LEVELS, (1, 1), None, True),
    ("ssl_dhparam", SERVER_LEVELS, (1, 1), None, False),
    ("ssl_ecdh_curve", SERVER_LEVELS, (1, 1), None, False),
    ("ssl_client_certificate", SERVER_LEVELS, (1, 1), None, False),
    ("ssl_trusted_certificate", SERVER_LEVELS, (1, 1), None, False),
    ("ssl_verify_client", SERVER_LEVELS, (1, 1), _verify_client, False),
    ("ssl_verify_depth", SERVER_LEVELS, (1, 1), lambda args, src: parse_number(args[0], "ssl_verify_depth",
                                                                              src), False),
    ("http2", SERVER_LEVELS, (1, 1), _one(parse_flag, "http2"), False),
)


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


def _certificates(chain: list[Block], where: Source | None) -> tuple[CertificatePair, ...]:
    """nginx: the certificates and keys of the innermost level that has any, paired in order."""
    for block in chain:
        certs = block.settings.get("ssl_certificate", [])
        keys = block.settings.get("ssl_certificate_key", [])
        if not certs and not keys:
            continue
        if len(keys) < len(certs):
            raise ConfigError(f'no "ssl_certificate_key" is defined for certificate "{certs[len(keys)][0][0]}"',
                              certs[len(keys)][1])
        if len(certs) < len(keys):
            raise ConfigError(f'no "ssl_certificate" is defined for key "{keys[len(certs)][0][0]}"',
                              keys[len(certs)][1])
        return tuple(CertificatePair(full_path(cert[0][0], cert[1]), full_path(key[0][0], key[1]), cert[1])
                     for cert, key in zip(certs, keys, strict=True))
    return ()


def server_tls(chain: list[Block], ssl_listens: list[Source | None], default_server: bool) -> ServerTls | None:
    """The merged ssl settings of a server (chain: server block, then http block); None when the server
    has no `listen ... ssl` and no certificate (nothing to serve TLS with)."""
    certificates = _certificates(chain, chain[0].source)
    if not ssl_listens and not certificates:
        return None
    if ssl_listens and not certificates and default_server:
        raise ConfigError('no "ssl_certificate" is defined for the "listen ... ssl" directive', ssl_listens[0])
    keys = [(path[0], src) for block in chain for path, src in block.settings.get("ssl_session_ticket_key", [])]
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
        source=chain[0].source,
    )


def notices(config: Config) -> list[str]:
    """What `sheer -t` says about the ssl settings it accepts but serves otherwise than nginx."""
    found: list[str] = []
    for server in (config.http.servers if config.http else ()):
        for listen in server.listens:
            if listen.http2:
                found.append(f'{listen.source}: "listen ... http2" is accepted, but HTTP/2 is not served yet: '
                             "clients negotiate HTTP/1.1 (ALPN http/1.1)")
        if server.http2:
            found.append(f'{server.source}: "http2 on" is accepted, but HTTP/2 is not served yet: clients '
                         "negotiate HTTP/1.1 (ALPN http/1.1)")
        tls = server.tls
        if tls is None:
            continue
        cache = tls.session_cache
        if cache.shared is not None:
            found.append(f'{cache.source}: "ssl_session_cache shared:{cache.shared}": each worker keeps its own '
                         "session cache (Python's ssl module has no session callbacks to share one); "
                         "session tickets resume across workers")
        if len(tls.session_ticket_keys) > 1:
            found.append(f"{tls.source}: only the first ssl_session_ticket_key is used, to encrypt and to "
                         "decrypt; tickets made with the others are not resumed")
        if tls.verify_client == "optional_no_ca":
            found.append(f'{tls.source}: "ssl_verify_client optional_no_ca" verifies like "optional": a '
                         "certificate that fails verification ends the handshake")
    return found
