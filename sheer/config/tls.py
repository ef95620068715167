"""The http ssl module's directives (nginx's ngx_http_ssl_module) and the frozen TLS settings of a server.

Only files are named here: the certificates and keys are read, and the OpenSSL contexts made, by
sheer.io.tls in the master (before the workers fork, as nginx's master does), so that `sheer -t` and
a reload read them the same way and a key readable only by root still serves unprivileged workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sheer.config.errors import ConfigError, Source

if TYPE_CHECKING:
    from sheer.config.template import Template
from sheer.config.values import parse_flag, parse_number, parse_size, parse_time

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
    password_file: str | None = None     # ssl_password_file: the passphrases of encrypted keys, tried in turn
    crl: str | None = None               # ssl_crl: revoked certificates (PEM), checked along the chain
    reject_handshake: bool = False       # ssl_reject_handshake on: an unrecognized_name alert
    conf_commands: tuple[tuple[str, str], ...] = ()     # ssl_conf_command: OpenSSL's SSL_CONF_cmd, last
    # ALPN: http/1.1 (HTTP/2 is not served: `listen ... http2` clients negotiate HTTP/1.1); stream: ssl_alpn
    alpn: tuple[str, ...] = ("http/1.1",)
    alpn_strict: bool = False            # stream: a client offering none of them is refused (nginx)
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """`proxy_pass https://...` and the proxy_ssl_* directives of its location (nginx's defaults)."""

    name: str                                  # proxy_ssl_name; default: the proxy_pass host
    server_name: bool = False                  # proxy_ssl_server_name: send SNI
    verify: bool = False                       # proxy_ssl_verify
    trusted_certificate: str | None = None
    verify_depth: int = 1
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    ciphers: str = "DEFAULT"
    certificate: CertificatePair | None = None  # proxy_ssl_certificate and _key: a client certificate
    session_reuse: bool = True
    password_file: str | None = None           # proxy_ssl_password_file
    crl: str | None = None                     # proxy_ssl_crl
    conf_commands: tuple[tuple[str, str], ...] = ()    # proxy_ssl_conf_command
    # proxy_ssl_certificate and _key with variables: rendered per connection (an empty one: none sent),
    # a relative result taken from `directory` (the configuration's)
    certificate_vars: tuple[Template, Template] | None = None
    name_vars: Template | None = None          # proxy_ssl_name with variables
    directory: str = ""
    source: Source | None = None


def _protocols(args: list[str], src: Source, name: str = "ssl_protocols") -> tuple[str, ...]:
    for word in args:
        if word not in PROTOCOLS:
            raise ConfigError(f'invalid value "{word}" in "{name}" directive', src)
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
LOCATION_LEVELS = SERVER_LEVELS | {"http.location"}
STREAM_LEVELS = frozenset({"stream", "stream.server"})
TLS_LEVELS = SERVER_LEVELS | STREAM_LEVELS                 # ssl_*: http and stream (ngx_stream_ssl_module)
PROXY_SSL_LEVELS = LOCATION_LEVELS | STREAM_LEVELS
# name, contexts, (min, max) arguments, converter (None: the words as written), may repeat
DIRECTIVES: tuple[tuple[str, frozenset[str], tuple[int, int | None], Any, bool], ...] = (
    ("ssl_certificate", TLS_LEVELS, (1, 1), None, True),
    ("ssl_certificate_key", TLS_LEVELS, (1, 1), None, True),
    ("ssl_protocols", TLS_LEVELS, (1, None), _protocols, False),
    ("ssl_ciphers", TLS_LEVELS, (1, 1), None, False),
    ("ssl_prefer_server_ciphers", TLS_LEVELS, (1, 1), _one(parse_flag, "ssl_prefer_server_ciphers"),
     False),
    ("ssl_session_cache", TLS_LEVELS, (1, 2), _session_cache, False),
    ("ssl_session_timeout", TLS_LEVELS, (1, 1), _one(parse_time, "ssl_session_timeout"), False),
    ("ssl_session_tickets", TLS_LEVELS, (1, 1), _one(parse_flag, "ssl_session_tickets"), False),
    ("ssl_session_ticket_key", TLS_LEVELS, (1, 1), None, True),
    ("ssl_dhparam", TLS_LEVELS, (1, 1), None, False),
    ("ssl_ecdh_curve", TLS_LEVELS, (1, 1), None, False),
    ("ssl_client_certificate", TLS_LEVELS, (1, 1), None, False),
    ("ssl_trusted_certificate", TLS_LEVELS, (1, 1), None, False),
    ("ssl_verify_client", TLS_LEVELS, (1, 1), _verify_client, False),
    ("ssl_verify_depth", TLS_LEVELS, (1, 1), lambda args, src: parse_number(args[0], "ssl_verify_depth",
                                                                              src), False),
    ("ssl_password_file", TLS_LEVELS, (1, 1), None, False),
    ("ssl_crl", TLS_LEVELS, (1, 1), None, False),
    ("ssl_reject_handshake", TLS_LEVELS, (1, 1), _one(parse_flag, "ssl_reject_handshake"), False),
    ("ssl_conf_command", TLS_LEVELS, (2, 2), None, True),
    ("ssl_alpn", STREAM_LEVELS, (1, None), None, False),
    ("http2", SERVER_LEVELS, (1, 1), _one(parse_flag, "http2"), False),
    # stream: nginx's ngx_stream_ssl_preread_module, and the preread phase's bounds
    ("ssl_preread", STREAM_LEVELS, (1, 1), _one(parse_flag, "ssl_preread"), False),
    ("preread_timeout", STREAM_LEVELS, (1, 1), _one(parse_time, "preread_timeout"), False),
    ("preread_buffer_size", STREAM_LEVELS, (1, 1),
     lambda args, src: parse_size(args[0], "preread_buffer_size", src), False),
    # to the upstream (sheer.config.build_tls.upstream_tls)
    ("proxy_ssl", STREAM_LEVELS, (1, 1), _one(parse_flag, "proxy_ssl"), False),
    ("ssl_handshake_timeout", STREAM_LEVELS, (1, 1), _one(parse_time, "ssl_handshake_timeout"), False),
    ("proxy_ssl_server_name", PROXY_SSL_LEVELS, (1, 1), _one(parse_flag, "proxy_ssl_server_name"), False),
    ("proxy_ssl_name", PROXY_SSL_LEVELS, (1, 1), None, False),
    ("proxy_ssl_verify", PROXY_SSL_LEVELS, (1, 1), _one(parse_flag, "proxy_ssl_verify"), False),
    ("proxy_ssl_trusted_certificate", PROXY_SSL_LEVELS, (1, 1), None, False),
    ("proxy_ssl_verify_depth", PROXY_SSL_LEVELS, (1, 1),
     lambda args, src: parse_number(args[0], "proxy_ssl_verify_depth", src), False),
    ("proxy_ssl_protocols", PROXY_SSL_LEVELS, (1, None),
     lambda args, src: _protocols(args, src, "proxy_ssl_protocols"), False),
    ("proxy_ssl_ciphers", PROXY_SSL_LEVELS, (1, 1), None, False),
    ("proxy_ssl_certificate", PROXY_SSL_LEVELS, (1, 1), None, False),
    ("proxy_ssl_certificate_key", PROXY_SSL_LEVELS, (1, 1), None, False),
    ("proxy_ssl_session_reuse", PROXY_SSL_LEVELS, (1, 1), _one(parse_flag, "proxy_ssl_session_reuse"), False),
    ("proxy_ssl_password_file", PROXY_SSL_LEVELS, (1, 1), None, False),
    ("proxy_ssl_crl", PROXY_SSL_LEVELS, (1, 1), None, False),
    ("proxy_ssl_conf_command", PROXY_SSL_LEVELS, (2, 2), None, True),
)

# What Python's ssl module (and so sheer) cannot do: `-t` names the feature, never "unknown directive".
UNSUPPORTED: dict[str, str] = {
    "ssl_stapling": "OCSP stapling: Python's ssl module has no OCSP status request callback",
    "ssl_stapling_file": "OCSP stapling: Python's ssl module has no OCSP status request callback",
    "ssl_stapling_responder": "OCSP stapling: Python's ssl module has no OCSP status request callback",
    "ssl_stapling_verify": "OCSP stapling: Python's ssl module has no OCSP status request callback",
    "ssl_ocsp": "OCSP checks of client certificates: Python's ssl module has no OCSP client",
    "ssl_ocsp_cache": "OCSP checks of client certificates: Python's ssl module has no OCSP client",
    "ssl_ocsp_responder": "OCSP checks of client certificates: Python's ssl module has no OCSP client",
    "ssl_engine": "OpenSSL engines (hardware keys): Python's ssl module loads keys from files only",
    "ssl_early_data": "TLS 1.3 early data (0-RTT): Python's ssl module cannot accept it",
    "ssl_buffer_size": "the TLS record size: Python's ssl module writes records of its own size",
}


def unsupported(name: str) -> str | None:
    """`-t`'s error for a TLS directive sheer cannot serve, or None."""
    why = UNSUPPORTED.get(name)
    return None if why is None else f'"{name}" is not supported by sheer ({why})'

