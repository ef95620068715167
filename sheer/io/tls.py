"""OpenSSL contexts for `listen ... ssl` addresses, made from sheer.config.tls the way nginx's
ngx_http_ssl_module makes its SSL_CTXs, and what a handshake's failure is logged as.

The contexts are made once per configuration in the master, before the workers fork (as nginx's
master does): the workers then share the session ticket keys OpenSSL drew for each context, so a
ticket issued by one worker resumes in another; `ssl_session_ticket_key` files make the keys survive
a reload too. Each address gets its own contexts, since SNI (sheer's servername callback) chooses
among the servers of one address."""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import warnings
from dataclasses import dataclass, field
from typing import Any

from sheer.config.errors import ConfigError
from sheer.config.model import Config, HttpServer
from sheer.config.tls import ServerTls
from sheer.core.http.routing import VirtualHosts
from sheer.core.tls_vars import TlsInfo
from sheer.io import openssl

ListenKey = tuple[str, int, bool]

_VERSIONS = {"SSLv3": ssl.TLSVersion.SSLv3, "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _read(path: str, what: str, source: object) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f'cannot load {what} "{path}": BIO_new_file() failed ({exc.errno}: {exc.strerror})',
                          source) from None   # type: ignore[arg-type]


def read_passwords(path: str, source: object) -> tuple[bytes, ...]:
    """nginx's ngx_ssl_read_password_file: one passphrase a line (CRLF or LF), an empty one when the
    file has none; read once per configuration (the file may be a fifo)."""
    data = _read(path, "password file", source)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return tuple(line[:-1] if line.endswith(b"\r") else line for line in lines) or (b"",)


def load_pair(ctx: ssl.SSLContext, cert: str, key: str, source: object,
              passwords: tuple[bytes, ...] = (b"",)) -> None:
    """One certificate and its key (nginx's ngx_ssl_certificate); a second pair of another key type
    (RSA and ECDSA) is added beside the first, as OpenSSL keeps one certificate per key type. An
    encrypted key is tried with each passphrase in turn (never a prompt: no file is an empty one)."""
    for number, password in enumerate(passwords, 1):
        try:
            ctx.load_cert_chain(cert, key, password=password)
            return
        except ssl.SSLError as exc:
            if number < len(passwords):
                continue
            # the files are read only now, to say what is wrong (a fifo is read once, by OpenSSL)
            cert_pem = _read(cert, "certificate", source)
            key_pem = _read(key, "certificate key", source)
            words = (exc.reason or str(exc)).lower().replace("_", " ")
            reason = f"SSL: {exc.library or 'SSL'} routines::{words}"
            if exc.reason == "KEY_VALUES_MISMATCH":
                message = f'SSL_CTX_use_PrivateKey("{key}") failed ({reason})'
            elif b"-----BEGIN" not in cert_pem or b"CERTIFICATE" not in cert_pem:
                message = f'cannot load certificate "{cert}": PEM_read_bio_X509_AUX() failed ({reason})'
            elif b"PRIVATE KEY" not in key_pem or b"ENCRYPTED" in key_pem:
                message = f'cannot load certificate key "{key}": PEM_read_bio_PrivateKey() failed ({reason})'
            else:
                message = f'cannot load certificate "{cert}" with key "{key}" ({reason})'
            raise ConfigError(message, source) from None   # type: ignore[arg-type]
        except OSError as exc:        # nginx's BIO_new_file() line for the file that cannot be opened
            _read(cert, "certificate", source)
            _read(key, "certificate key", source)
            raise ConfigError(f'cannot load certificate "{cert}" with key "{key}" ({exc.strerror})',
                              source) from None   # type: ignore[arg-type]


def _ticket_key(path: str, source: object) -> bytes:
    """nginx's ssl_session_ticket_key file: 48 bytes (name, AES-128 key, HMAC key) or 80 (name, HMAC key,
    AES-256 key: OpenSSL's own layout). A 48-byte file is widened the same way in every sheer process."""
    data = _read(path, "session ticket key", source)
    if len(data) == 80:
        return data
    if len(data) == 48:
        return (data[:16] + hashlib.sha256(b"sheer hmac" + data[32:48]).digest()
                + hashlib.sha256(b"sheer aes" + data[16:32]).digest())
    raise ConfigError(f'"{path}" must be 48 or 80 bytes', source)   # type: ignore[arg-type]


def server_context(tls: ServerTls, passwords: dict[str, tuple[bytes, ...]] | None = None) -> ssl.SSLContext:
    """An SSL_CTX for one server, as nginx's ngx_http_ssl_merge_srv_conf makes it; ConfigError names the
    file and the directive's line when something cannot be loaded. `passwords`: the password files
    read so far for this configuration, by path (each is read once)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = [_VERSIONS[name] for name in tls.protocols if name in _VERSIONS]
    if versions:
        with warnings.catch_warnings():      # TLSv1 and TLSv1.1 are nginx's defaults still; OpenSSL's
            warnings.simplefilter("ignore", DeprecationWarning)   # security level refuses them anyway
            ctx.minimum_version = min(versions)
            ctx.maximum_version = max(versions)
    try:
        ctx.set_ciphers(tls.ciphers)
    except ssl.SSLError:
        raise ConfigError(f'SSL_CTX_set_cipher_list("{tls.ciphers}") failed (SSL: no cipher match)',
                          tls.source) from None
    if tls.prefer_server_ciphers:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    phrases: tuple[bytes, ...] = (b"",)
    if tls.password_file is not None:
        known = passwords if passwords is not None else {}
        if tls.password_file not in known:
            known[tls.password_file] = read_passwords(tls.password_file, tls.source)
        phrases = known[tls.password_file]
    for pair in tls.certificates:
        load_pair(ctx, pair.certificate, pair.key, pair.source, phrases)
    if tls.alpn and tls.alpn_strict:     # stream ssl_alpn: no protocol in common ends the handshake
        openssl.alpn_or_refuse(ctx, tls.alpn)
    elif tls.alpn:
        ctx.set_alpn_protocols(list(tls.alpn))
    if tls.dhparam is not None:
        try:
            ctx.load_dh_params(tls.dhparam)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f'PEM_read_bio_DHparams("{tls.dhparam}") failed ({exc})', tls.source) from None
    if tls.ecdh_curve != "auto" and not openssl.set_groups(ctx, tls.ecdh_curve):
        raise ConfigError(f'SSL_CTX_set1_curves_list("{tls.ecdh_curve}") failed', tls.source)
    cache = tls.session_cache
    if cache.mode == "off":
        openssl.set_session_cache(ctx, openssl.SSL_SESS_CACHE_OFF, None)
    elif cache.mode == "none":
        openssl.set_session_cache(ctx, openssl.SSL_SESS_CACHE_SERVER | openssl.SSL_SESS_CACHE_NO_INTERNAL,
                                  None)
    else:   # builtin, or shared: each worker's OpenSSL cache (see docs/tls.md); tickets cross workers
        openssl.set_session_cache(ctx, openssl.SSL_SESS_CACHE_SERVER, cache.builtin)
    openssl.set_session_timeout(ctx, int(tls.session_timeout))
    if not tls.session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
    elif tls.session_ticket_keys:
        openssl.set_ticket_keys(ctx, _ticket_key(tls.session_ticket_keys[0], tls.source))
    if tls.verify_client != "off":
        for ca in (tls.client_certificate, tls.trusted_certificate):
            if ca is not None:
                load_verify(ctx, ca, tls.source)
        if tls.client_certificate is not None:
            openssl.set_client_ca_list(ctx, tls.client_certificate)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        openssl.set_verify_depth(ctx, tls.verify_depth)
        # nginx's verify callback: the handshake goes on whatever the certificate; a request on the
        # connection is answered 495 "The SSL certificate error" when it did not verify
        openssl.accept_any_certificate(ctx)
        if tls.crl is not None:
            load_crl(ctx, tls.crl, tls.source)
    conf_commands(ctx, tls.conf_commands, True, tls.source)
    return ctx


def conf_commands(ctx: ssl.SSLContext, commands: tuple[tuple[str, str], ...], server: bool,
                  source: object) -> None:
    """ssl_conf_command (proxy_ssl_conf_command): OpenSSL's SSL_CONF_cmd on the finished context."""
    if commands:
        try:
            openssl.conf_commands(ctx, commands, server)
        except (openssl.OpenSslUnavailable, ValueError) as exc:
            raise ConfigError(str(exc), source) from None   # type: ignore[arg-type]


def load_verify(ctx: ssl.SSLContext, path: str, source: object) -> None:
    try:
        ctx.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f'SSL_CTX_load_verify_locations("{path}") failed ({exc})',
                          source) from None   # type: ignore[arg-type]


def load_crl(ctx: ssl.SSLContext, path: str, source: object) -> None:
    """nginx's ngx_ssl_crl: the file's CRLs, and every certificate of the chain checked against them."""
    try:
        ctx.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f'X509_LOOKUP_load_file("{path}") failed ({exc})', source) from None   # type: ignore[arg-type]
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN


@dataclass
class TlsListener:
    """The contexts of one `listen ... ssl` address: the default server's, switched by SNI."""

    vhosts: VirtualHosts | None             # None: a stream server (one context, no SNI switching)
    default: ssl.SSLContext
    contexts: dict[int, ssl.SSLContext] = field(default_factory=dict)   # id(HttpServer) -> its context
    verify: dict[int, str] = field(default_factory=dict)    # id(context) -> its ssl_verify_client
    rejecting: set[int] = field(default_factory=set)        # id(context) of `ssl_reject_handshake on`

    @classmethod
    def build(cls, servers: list[HttpServer], passwords: dict[str, tuple[bytes, ...]]) -> TlsListener:
        made: list[tuple[ServerTls, ssl.SSLContext]] = []
        contexts: dict[int, ssl.SSLContext] = {}
        for server in servers:
            if server.tls is not None:
                contexts[id(server)] = ctx = server_context(server.tls, passwords)
                made.append((server.tls, ctx))
        default = servers[0]
        if id(default) not in contexts:
            raise ConfigError('no "ssl_certificate" is defined for the "listen ... ssl" directive',
                              default.source)
        listener = cls(VirtualHosts(servers), contexts[id(default)], contexts)
        listener._judge(made)
        listener.default.sni_callback = listener._servername
        return listener

    @classmethod
    def for_stream(cls, tls: ServerTls, passwords: dict[str, tuple[bytes, ...]] | None = None) -> TlsListener:
        listener = cls(None, server_context(tls, passwords), {})
        listener._judge([(tls, listener.default)])
        listener.default.sni_callback = listener._servername
        return listener

    def _judge(self, made: list[tuple[ServerTls, ssl.SSLContext]]) -> None:
        for tls, ctx in made:
            self.verify[id(ctx)] = tls.verify_client
            if tls.reject_handshake:
                self.rejecting.add(id(ctx))

    def refusal(self, sslobj: ssl.SSLObject, info: TlsInfo) -> int | None:
        """495, 496 or None: what ssl_verify_client of the server that served the handshake says."""
        return info.refusal(self.verify.get(id(sslobj.context), "off"))

    def _servername(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> int | None:
        """nginx's ngx_http_ssl_servername: the server named by SNI lends its context (certificates,
        client verification), or ends the handshake with unrecognized_name (ssl_reject_handshake)."""
        sslobj.sheer_server_name = name or ""     # type: ignore[attr-defined]  # $ssl_server_name
        chosen = ctx
        if name and self.vhosts is not None:
            chosen = self.contexts.get(id(self.vhosts.select(name.lower()).server)) or ctx
            if chosen is not ctx:
                sslobj.context = chosen
                if self.verify.get(id(chosen), "off") != self.verify.get(id(ctx), "off"):
                    with contextlib.suppress(openssl.OpenSslUnavailable):
                        openssl.follow_verify(sslobj)
        if id(chosen) in self.rejecting:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None


def listeners(config: Config) -> dict[ListenKey, TlsListener]:
    """Every `listen ... ssl` address of the http block, its contexts made (ConfigError otherwise)."""
    by_address: dict[ListenKey, list[HttpServer]] = {}
    ssl_addresses: set[ListenKey] = set()
    for server in (config.http.servers if config.http else ()):
        for listen in server.listens:
            key = (listen.bind_host, listen.port, listen.udp)
            by_address.setdefault(key, []).append(server)
            if listen.ssl:
                ssl_addresses.add(key)
    passwords: dict[str, tuple[bytes, ...]] = {}       # each ssl_password_file read once
    made = {key: TlsListener.build(by_address[key], passwords) for key in ssl_addresses}
    # nginx loads the certificates of every server that has some, ssl address or not: `-t` finds them
    for key, servers in by_address.items():
        if key not in ssl_addresses:
            for server in servers:
                if server.tls is not None and server.tls.certificates:
                    server_context(server.tls, passwords)
    for stream_server in (config.stream.servers if config.stream else ()):
        for listen in stream_server.listens:
            if listen.ssl and stream_server.tls is not None:
                made[(listen.bind_host, listen.port, False)] = TlsListener.for_stream(stream_server.tls,
                                                                                        passwords)
    return made


def connection_info(sslobj: ssl.SSLObject) -> TlsInfo:
    """What the handshake settled; the client certificate and its verify result when the context asked
    for one (nginx's callback lets every certificate through: the result is judged per request)."""
    cipher = sslobj.cipher()
    der = sslobj.getpeercert(True) if sslobj.context.verify_mode != ssl.CERT_NONE else None
    cert: dict[str, Any] | None = None
    code, text = 0, ""
    if der:
        cert = sslobj.getpeercert()
        try:
            code, text = openssl.verify_result(sslobj)
        except openssl.OpenSslUnavailable:   # verified by OpenSSL itself: the handshake got here
            code, text = 0, ""
    name = getattr(sslobj, "sheer_server_name", "")
    return TlsInfo(sslobj.version() or "", cipher[0] if cipher else "", name, sslobj.session_reused, cert,
                   der or None, code, text, lambda variable: _more(sslobj, variable))


def _more(sslobj: ssl.SSLObject, name: str) -> str:
    """$ssl_session_id (hex), $ssl_ciphers (the client's, as OpenSSL names them), $ssl_curve(s)."""
    try:
        if name == "ssl_session_id":
            session = sslobj.session
            return session.id.hex() if session is not None else ""
        if name == "ssl_ciphers":
            return ":".join(cipher[0] for cipher in sslobj.shared_ciphers() or ())
        if name == "ssl_curve":
            return openssl.negotiated_group(sslobj)
        if name == "ssl_curves":
            return openssl.client_groups(sslobj)
        if name == "ssl_alpn_protocol":
            return sslobj.selected_alpn_protocol() or ""
    except (openssl.OpenSslUnavailable, ValueError, ssl.SSLError):
        return ""
    return ""


# OpenSSL reasons nginx's ngx_ssl_connection_error logs at "info": the client's doing, not the server's
_CLIENT_REASONS = frozenset({
    "BAD_CHANGE_CIPHER_SPEC", "NO_SUITABLE_KEY_SHARE", "NO_SUITABLE_SIGNATURE_ALGORITHM",
    "BLOCK_CIPHER_PAD_IS_WRONG", "DIGEST_CHECK_FAILED", "ERROR_IN_RECEIVED_CIPHER_LIST",
    "EXCESSIVE_MESSAGE_SIZE", "HTTPS_PROXY_REQUEST", "HTTP_REQUEST", "LENGTH_MISMATCH", "NO_CIPHERS_PASSED",
    "NO_CIPHERS_SPECIFIED", "NO_COMPRESSION_SPECIFIED", "NO_SHARED_CIPHER", "RECORD_LENGTH_MISMATCH",
    "CLIENTHELLO_TLSEXT", "PARSE_TLSEXT", "CALLBACK_FAILED", "NO_APPLICATION_PROTOCOL", "UNEXPECTED_MESSAGE",
    "UNEXPECTED_RECORD", "UNKNOWN_ALERT_TYPE", "UNKNOWN_PROTOCOL", "NO_COMMON_SIGNATURE_ALGORITHMS",
    "UNSUPPORTED_PROTOCOL", "NO_SHARED_GROUP", "WRONG_VERSION_NUMBER", "DECRYPTION_FAILED_OR_BAD_RECORD_MAC",
    "RENEGOTIATE_EXT_TOO_LONG", "RENEGOTIATION_ENCODING_ERR", "RENEGOTIATION_MISMATCH",
    "UNSAFE_LEGACY_RENEGOTIATION_DISABLED", "SCSV_RECEIVED_WHEN_RENEGOTIATING", "INAPPROPRIATE_FALLBACK",
    "CERT_CB_ERROR", "VERSION_TOO_LOW", "PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_VERIFY_FAILED",
})


def rejected(exc: BaseException) -> bool:
    """A handshake that `ssl_reject_handshake on` ended (its servername callback's alert, which OpenSSL
    wrote on the socket itself: sheer.io.tls_transport)."""
    return getattr(exc, "reason", None) == "CALLBACK_FAILED"


def handshake_failure(exc: BaseException) -> tuple[str, str]:
    """The level and text nginx logs for a failed handshake (before ", client: ..., server: ...")."""
    if isinstance(exc, ssl.SSLError) and exc.reason is not None:
        reason = exc.reason
        level = "info" if reason in _CLIENT_REASONS or reason.startswith(("SSLV3_ALERT", "TLSV1_ALERT")) \
            else "crit"
        text = reason.lower().replace("_", " ")
        return level, f"SSL_do_handshake() failed (SSL: error:{exc.library or 'SSL'} routines::{text})"
    if isinstance(exc, (TimeoutError, ConnectionAbortedError)) and "taking longer" in str(exc) \
            or isinstance(exc, TimeoutError):
        return "info", "client timed out (110: Connection timed out)"
    if isinstance(exc, OSError) and exc.errno:
        return "info", f"peer closed connection in SSL handshake ({exc.errno}: {exc.strerror})"
    return "info", "peer closed connection in SSL handshake"


def key_warnings(config: Config) -> list[str]:
    """A private key others can read is worth a word at -t (nginx says nothing; the issue asks)."""
    found: list[str] = []
    seen: set[str] = set()
    for server in (config.http.servers if config.http else ()):
        for pair in (server.tls.certificates if server.tls else ()):
            if pair.key in seen:
                continue
            seen.add(pair.key)
            try:
                mode = os.stat(pair.key).st_mode
            except OSError:
                continue
            if mode & 0o004:
                found.append(f'the certificate key "{pair.key}" is readable by others '
                             f"(mode {mode & 0o777:04o}): chmod 600 it, owned by the user sheer starts as")
    return found
