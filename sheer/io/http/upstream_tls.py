"""TLS to the upstream (`proxy_pass https://...`), as nginx's ngx_http_upstream_ssl_init_connection:
the context of a location's proxy_ssl_* settings, the session kept per peer for the next connection
(proxy_ssl_session_reuse), and nginx's log lines when the handshake or the verification fails."""

from __future__ import annotations

import asyncio
import os
import ssl
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from sheer.config.errors import ConfigError
from sheer.config.tls import CertificatePair, UpstreamTls
from sheer.core.tls_names import host_matches, strip_port
from sheer.core.variables import VariableSource, render
from sheer.io import openssl
from sheer.io.tls import conf_commands, load_crl, load_pair, load_verify, read_passwords

_VERSIONS = {"SSLv3": ssl.TLSVersion.SSLv3, "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class UpstreamTlsFailed(Exception):
    """The handshake with a peer failed, or its certificate did not verify: nginx's message (error
    level), and the next upstream is tried as for a connect error."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


class _Context(ssl.SSLContext):
    """Hands the session to resume to the SSLObject the event loop makes (asyncio's create_connection
    takes no session argument): set just before the connection is made, in the same loop turn."""

    resume: ssl.SSLSession | None = None

    def wrap_bio(self, *args: Any, **kw: Any) -> ssl.SSLObject:
        session, self.resume = self.resume, None
        if session is not None and kw.get("session") is None:
            kw["session"] = session
        return super().wrap_bio(*args, **kw)


def upstream_context(tls: UpstreamTls) -> ssl.SSLContext:
    """ConfigError names the file when a CA or client certificate cannot be loaded (`sheer -t`)."""
    ctx = _Context(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False            # the name is checked after the handshake, as nginx does
    versions = [_VERSIONS[name] for name in tls.protocols if name in _VERSIONS]
    if versions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = min(versions)
            ctx.maximum_version = max(versions)
    try:
        ctx.set_ciphers(tls.ciphers)
    except ssl.SSLError:
        raise ConfigError(f'SSL_CTX_set_cipher_list("{tls.ciphers}") failed (SSL: no cipher match)',
                          tls.source) from None
    if tls.verify:
        assert tls.trusted_certificate is not None
        load_verify(ctx, tls.trusted_certificate, tls.source)
        ctx.verify_mode = ssl.CERT_REQUIRED
        openssl.set_verify_depth(ctx, tls.verify_depth)
        if tls.crl is not None:
            load_crl(ctx, tls.crl, tls.source)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if tls.certificate is not None:
        passwords = read_passwords(tls.password_file, tls.source) if tls.password_file else (b"",)
        load_pair(ctx, tls.certificate.certificate, tls.certificate.key, tls.source, passwords)
    conf_commands(ctx, tls.conf_commands, False, tls.source)
    return ctx


class UpstreamTlsSetup:
    """One location's TLS to its peers, in one worker."""

    def __init__(self, tls: UpstreamTls) -> None:
        self.tls = tls
        self.ctx = upstream_context(tls)
        self.sessions: dict[tuple[str, int] | str, ssl.SSLSession] = {}
        self.by_certificate: dict[tuple[str, str], _Context] = {}    # proxy_ssl_certificate $variables

    def _context(self, variables: VariableSource | None) -> _Context:
        """The context for this connection: the location's, or (a certificate with variables) the one of
        the rendered files, made once per worker; no file named: no certificate sent, as nginx."""
        templates = self.tls.certificate_vars
        if templates is None or variables is None:
            return cast(_Context, self.ctx)
        cert, key = (render(template, variables) for template in templates)
        if not cert or not key:
            return cast(_Context, self.ctx)
        cert, key = (os.path.join(self.tls.directory, path) for path in (cert, key))
        ctx = self.by_certificate.get((cert, key))
        if ctx is None:
            try:
                made = upstream_context(replace(self.tls, certificate=CertificatePair(cert, key)))
            except ConfigError as exc:
                raise UpstreamTlsFailed(f"{exc.message} while SSL handshaking to upstream") from None
            ctx = self.by_certificate[(cert, key)] = cast(_Context, made)
        return ctx

    async def wrap(self, loop: asyncio.AbstractEventLoop, sock: Any, factory: Callable[[], asyncio.Protocol],
                   peer: tuple[str, int] | str, timeout: float,
                   variables: VariableSource | None = None) -> asyncio.Protocol:
        """The handshake on a connected socket; UpstreamTlsFailed with nginx's words when it fails."""
        tls = self.tls
        ctx = self._context(variables)
        name = tls.name
        if tls.name_vars is not None and variables is not None:
            name = strip_port(render(tls.name_vars, variables))
        if tls.session_reuse:
            ctx.resume = self.sessions.get(peer)
        try:
            # server_hostname "" sends no SNI and checks no name (proxy_ssl_server_name off, nginx's default)
            transport, protocol = await loop.create_connection(
                factory, sock=sock, ssl=ctx, server_hostname=name if tls.server_name else "",
                ssl_handshake_timeout=timeout)
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamTlsFailed(f"upstream SSL certificate verify error: ({exc.verify_code}:"
                                    f"{exc.verify_message}) while SSL handshaking to upstream") from None
        except ssl.SSLError as exc:
            text = (exc.reason or str(exc)).lower().replace("_", " ")
            raise UpstreamTlsFailed(f"SSL_do_handshake() failed (SSL: error:{exc.library or 'SSL'} routines::"
                                    f"{text}) while SSL handshaking to upstream") from None
        except (TimeoutError, ConnectionAbortedError) as exc:
            if isinstance(exc, TimeoutError) or "taking longer" in str(exc):
                raise UpstreamTlsFailed("upstream timed out (110: Connection timed out) while SSL "
                                        "handshaking to upstream", timed_out=True) from None
            raise
        finally:
            ctx.resume = None
        sslobj = transport.get_extra_info("ssl_object")
        if tls.verify and sslobj is not None and not host_matches(name, sslobj.getpeercert() or {}):
            transport.abort()
            raise UpstreamTlsFailed(f'upstream SSL certificate does not match "{name}" while SSL '
                                    "handshaking to upstream")
        if tls.session_reuse and sslobj is not None:
            protocol.ended = lambda: self._remember(peer, sslobj)    # type: ignore[attr-defined]
        return protocol

    def _remember(self, peer: tuple[str, int] | str, sslobj: ssl.SSLObject) -> None:
        session = sslobj.session
        if session is not None and (session.has_ticket or sslobj.session_reused):
            self.sessions[peer] = session


_setups: dict[int, tuple[UpstreamTls, UpstreamTlsSetup]] = {}


def setup_for(tls: UpstreamTls) -> UpstreamTlsSetup:
    """Per worker and per location settings, made when the location is planned."""
    found = _setups.get(id(tls))
    if found is None or found[0] is not tls:
        found = _setups[id(tls)] = (tls, UpstreamTlsSetup(tls))
    return found[1]
