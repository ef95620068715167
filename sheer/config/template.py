"""Strings with nginx variables (`"Hello $remote_addr:${remote_port}"`), compiled once at load time."""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass

from sheer.config.errors import ConfigError, Source

_NAME = re.compile(r"[A-Za-z0-9_]+")

# $ssl_* of a TLS connection, http and stream alike (their values: sheer.core.tls_vars)
SSL_VARIABLES = frozenset({
    "ssl_protocol", "ssl_cipher", "ssl_ciphers", "ssl_curve", "ssl_curves", "ssl_server_name",
    "ssl_session_reused", "ssl_session_id", "ssl_alpn_protocol", "ssl_client_verify", "ssl_client_s_dn",
    "ssl_client_i_dn", "ssl_client_s_dn_legacy", "ssl_client_i_dn_legacy", "ssl_client_serial",
    "ssl_client_fingerprint", "ssl_client_raw_cert", "ssl_client_cert", "ssl_client_escaped_cert",
    "ssl_client_v_start", "ssl_client_v_end", "ssl_client_v_remain",
})

# Variables sheer knows, per module; `http_`, `sent_http_`, `sent_trailer_`, `arg_`, `cookie_`,
# `upstream_http_` and `upstream_cookie_` are prefixes, as in nginx.
COMMON_VARIABLES = frozenset({
    "remote_addr", "remote_port", "server_addr", "server_port", "hostname", "time_local",
    "time_iso8601", "msec", "pid", "bytes_sent", "upstream_addr", "status", "connection",
    "nginx_version", "binary_remote_addr", "upstream_connect_time",
    # PROXY protocol (listen ... proxy_protocol) and realip
    "proxy_protocol_addr", "proxy_protocol_port", "proxy_protocol_server_addr", "proxy_protocol_server_port",
    "realip_remote_addr", "realip_remote_port",
})
STREAM_VARIABLES = COMMON_VARIABLES | {
    "protocol", "bytes_received", "session_time", "upstream_bytes_sent",
    "upstream_bytes_received", "upstream_session_time", "upstream_first_byte_time",
    "ssl_preread_server_name", "ssl_preread_protocol", "ssl_preread_alpn_protocols",   # ssl_preread on
} | SSL_VARIABLES
HTTP_VARIABLES = COMMON_VARIABLES | {
    "host", "request_uri", "uri", "document_uri", "args", "query_string", "request",
    "request_method", "request_time", "scheme", "server_protocol", "server_name",
    "proxy_add_x_forwarded_for", "proxy_host", "proxy_port", "body_bytes_sent",
    "remote_user", "request_length", "upstream_status", "upstream_response_time", "upstream_header_time",
    "upstream_bytes_received", "upstream_bytes_sent", "upstream_response_length",
    "content_length", "content_type", "http_host", "is_args", "request_id", "connection_requests",
    "limit_rate", "connection_time", "invalid_referer", "gzip_ratio", "pipe",
    "connections_active", "connections_reading", "connections_writing", "connections_waiting",  # stub_status
    "request_body", "request_body_file",
    "https",                     # and $ssl_* (sheer/config/tls.py)
    "proxy_add_forwarded",       # sheer-only: RFC 7239 Forwarded, appended like $proxy_add_x_forwarded_for
} | SSL_VARIABLES
HTTP_PREFIXES = ("http_", "sent_http_", "sent_trailer_", "arg_", "cookie_", "upstream_http_",
                 "upstream_cookie_")
TLV_PREFIX = "proxy_protocol_tlv_"      # a PROXY protocol v2 TLV, http and stream (sheer.core.proxy_protocol)

# The variables a configuration makes itself (`map ... $name`), by module, while it is being read: nginx
# lets them be used before the line that makes them (sheer.config.load sets this).
DECLARED: ContextVar[tuple[frozenset[str], frozenset[str]]] = ContextVar(
    "DECLARED", default=(frozenset(), frozenset()))     # (http's, stream's)


def _declared(known: frozenset[str]) -> frozenset[str]:
    http, stream = DECLARED.get()
    return http if known is HTTP_VARIABLES else stream if known is STREAM_VARIABLES else frozenset()


@dataclass(frozen=True, slots=True)
class Var:
    name: str


@dataclass(frozen=True, slots=True)
class Template:
    """Literal text and variable references, in order."""

    parts: tuple[str | Var, ...]
    text: str

    @property
    def is_literal(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(part.name for part in self.parts if isinstance(part, Var))

    def __str__(self) -> str:
        return self.text


def compile_template(text: str, source: Source, known: frozenset[str],
                     prefixes: tuple[str, ...] = ()) -> Template:
    parts: list[str | Var] = []
    literal: list[str] = []
    pos = 0
    while pos < len(text):
        dollar = text.find("$", pos)
        if dollar < 0:
            literal.append(text[pos:])
            break
        literal.append(text[pos:dollar])
        braced = text.startswith("${", dollar)
        start = dollar + 2 if braced else dollar + 1
        match = _NAME.match(text, start)
        if match is None:
            raise ConfigError(f'invalid variable name in "{text}"', source)
        end = match.end()
        if braced:
            if not text.startswith("}", end):
                raise ConfigError(f'the closing bracket in "{match.group()}" variable is missing', source)
            end += 1
        name = match.group()
        if (name not in known and not name.startswith(prefixes) and name not in _declared(known)
                and not name.isdigit()       # $1..$9: the last regex's captures (rewrite, if, location)
                and not (name.startswith(TLV_PREFIX) and known in (HTTP_VARIABLES, STREAM_VARIABLES))):
            raise ConfigError(f'unknown "{name}" variable', source)
        if "".join(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(Var(name))
        pos = end
    if literal and "".join(literal):
        parts.append("".join(literal))
    return Template(tuple(parts), text)
