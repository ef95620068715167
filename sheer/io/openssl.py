"""The few SSL_CTX settings Python's ssl module does not expose, set through ctypes on the same
OpenSSL that module is linked with: the session ticket keys (so that every worker, and the workers
after a reload, encrypt and decrypt tickets alike, as nginx's ssl_session_ticket_key), the session
timeout, the session cache's mode and size, the verify depth, and a list of key exchange groups.

The SSL_CTX pointer is read from the SSLContext object: CPython's PySSLContext starts with
PyObject_HEAD then `SSL_CTX *ctx` (3.11 to 3.13). It is checked before any use: SSL_CTX_get_options
on it must give what `SSLContext.options` gives, else nothing is touched and OpenSslUnavailable says why."""

from __future__ import annotations

import ctypes
import ssl
import sys
from functools import cache
from typing import Any

# ssl.h's control codes (stable across OpenSSL 1.1 and 3.x)
SSL_CTRL_SET_SESS_CACHE_SIZE = 42
SSL_CTRL_SET_SESS_CACHE_MODE = 44
SSL_CTRL_GET_TLSEXT_TICKET_KEYS = 58
SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59
SSL_CTRL_SET_GROUPS_LIST = 92
SSL_SESS_CACHE_OFF = 0x0000
SSL_SESS_CACHE_SERVER = 0x0002
SSL_SESS_CACHE_NO_INTERNAL = 0x0100 | 0x0200       # no internal lookup, no internal store
TICKET_KEYS_SIZE = 80                             # name 16, HMAC key 32, AES key 32


SSL_CTRL_GET_NEGOTIATED_GROUP = 134
SSL_CTRL_GET_GROUPS = 90
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
# nginx's ngx_ssl_verify_callback: every certificate passes the handshake; its verify result is kept
# (SSL_get_verify_result) and judged per request (495 "The SSL certificate error"), as nginx does
_ACCEPT_ANY = _VERIFY_CALLBACK(lambda ok, store: 1)


# int cb(SSL *, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned inlen,
# void *arg)
_ALPN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(ctypes.c_ubyte), ctypes.c_void_p, ctypes.c_uint,
                                  ctypes.c_void_p)
SSL_TLSEXT_ERR_OK, SSL_TLSEXT_ERR_ALERT_FATAL = 0, 2


class OpenSslUnavailable(Exception):
    """The running Python's OpenSSL cannot be reached: the setting is not applied."""


@cache
def _lib() -> ctypes.CDLL:
    import _ssl  # the extension module: dlsym on it finds the libssl it was linked with

    path = getattr(_ssl, "__file__", None)
    try:
        lib = ctypes.CDLL(path) if path else ctypes.CDLL(None)
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_set_timeout.restype = ctypes.c_long
        lib.SSL_CTX_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_long]
        lib.SSL_CTX_set_verify_depth.restype = None
        lib.SSL_CTX_set_verify_depth.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_set_verify.restype = None
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
        lib.SSL_get_SSL_CTX.restype = ctypes.c_void_p
        lib.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
        lib.SSL_get_verify_result.restype = ctypes.c_long
        lib.SSL_get_verify_result.argtypes = [ctypes.c_void_p]
        lib.X509_verify_cert_error_string.restype = ctypes.c_char_p
        lib.X509_verify_cert_error_string.argtypes = [ctypes.c_long]
        lib.SSL_ctrl.restype = ctypes.c_long
        lib.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        lib.SSL_CTX_get_verify_callback.restype = ctypes.c_void_p
        lib.SSL_CTX_get_verify_callback.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_depth.restype = ctypes.c_int
        lib.SSL_CTX_get_verify_depth.argtypes = [ctypes.c_void_p]
        lib.SSL_set_verify.restype = None
        lib.SSL_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.SSL_set_verify_depth.restype = None
        lib.SSL_set_verify_depth.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.SSL_load_client_CA_file.restype = ctypes.c_void_p
        lib.SSL_load_client_CA_file.argtypes = [ctypes.c_char_p]
        lib.SSL_CTX_set_client_CA_list.restype = None
        lib.SSL_CTX_set_client_CA_list.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.SSL_CONF_CTX_new.restype = ctypes.c_void_p
        lib.SSL_CONF_CTX_new.argtypes = []
        lib.SSL_CONF_CTX_set_flags.restype = ctypes.c_uint
        lib.SSL_CONF_CTX_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.SSL_CONF_CTX_set_ssl_ctx.restype = None
        lib.SSL_CONF_CTX_set_ssl_ctx.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.SSL_CONF_cmd.restype = ctypes.c_int
        lib.SSL_CONF_cmd.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        lib.SSL_CONF_CTX_finish.restype = ctypes.c_int
        lib.SSL_CONF_CTX_finish.argtypes = [ctypes.c_void_p]
        lib.SSL_CONF_CTX_free.restype = None
        lib.SSL_CONF_CTX_free.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_set_alpn_select_cb.restype = None
        lib.SSL_CTX_set_alpn_select_cb.argtypes = [ctypes.c_void_p, _ALPN_CALLBACK, ctypes.c_void_p]
        lib.OBJ_nid2sn.restype = ctypes.c_char_p
        lib.OBJ_nid2sn.argtypes = [ctypes.c_int]
    except (OSError, AttributeError) as exc:
        raise OpenSslUnavailable(f"OpenSSL's functions cannot be found ({exc})") from None
    return lib


def _pointer(ctx: ssl.SSLContext) -> tuple[ctypes.CDLL, int]:
    lib = _lib()
    if hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled():
        raise OpenSslUnavailable("a free-threaded Python lays its objects out otherwise")
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)     # PyObject_HEAD
    pointer = ctypes.c_void_p.from_address(id(ctx) + head).value
    if not pointer or lib.SSL_CTX_get_options(pointer) != int(ctx.options):
        raise OpenSslUnavailable("the SSL_CTX of Python's SSLContext is not where CPython keeps it")
    return lib, pointer


def set_ticket_keys(ctx: ssl.SSLContext, keys: bytes) -> None:
    """The key that encrypts and decrypts session tickets (80 bytes: name, HMAC key, AES key)."""
    assert len(keys) == TICKET_KEYS_SIZE
    lib, pointer = _pointer(ctx)
    buffer = ctypes.create_string_buffer(keys, len(keys))
    if lib.SSL_CTX_ctrl(pointer, SSL_CTRL_SET_TLSEXT_TICKET_KEYS, len(keys), buffer) != 1:
        raise OpenSslUnavailable("SSL_CTX_set_tlsext_ticket_keys() failed")


def ticket_keys(ctx: ssl.SSLContext) -> bytes:
    """The context's ticket keys (tests: two workers' contexts share them)."""
    lib, pointer = _pointer(ctx)
    buffer = ctypes.create_string_buffer(TICKET_KEYS_SIZE)
    if lib.SSL_CTX_ctrl(pointer, SSL_CTRL_GET_TLSEXT_TICKET_KEYS, TICKET_KEYS_SIZE, buffer) != 1:
        raise OpenSslUnavailable("SSL_CTX_get_tlsext_ticket_keys() failed")
    return buffer.raw


def set_session_timeout(ctx: ssl.SSLContext, seconds: int) -> None:
    """How long a session (cached, or in a ticket) may be resumed; the TLS 1.3 ticket's lifetime."""
    lib, pointer = _pointer(ctx)
    lib.SSL_CTX_set_timeout(pointer, seconds)


def set_session_cache(ctx: ssl.SSLContext, mode: int, size: int | None) -> None:
    lib, pointer = _pointer(ctx)
    lib.SSL_CTX_ctrl(pointer, SSL_CTRL_SET_SESS_CACHE_MODE, mode, None)
    if size is not None:
        lib.SSL_CTX_ctrl(pointer, SSL_CTRL_SET_SESS_CACHE_SIZE, size, None)


def set_verify_depth(ctx: ssl.SSLContext, depth: int) -> None:
    lib, pointer = _pointer(ctx)
    lib.SSL_CTX_set_verify_depth(pointer, depth)


def set_groups(ctx: ssl.SSLContext, groups: str) -> bool:
    """`ssl_ecdh_curve X25519:prime256v1`: SSL_CTX_set1_groups_list; False when OpenSSL refuses it."""
    lib, pointer = _pointer(ctx)
    return bool(lib.SSL_CTX_ctrl(pointer, SSL_CTRL_SET_GROUPS_LIST, 0, ctypes.c_char_p(groups.encode())))


def accept_any_certificate(ctx: ssl.SSLContext) -> None:
    """Keep the verify mode Python set (ask for a client certificate) with nginx's callback that lets
    every certificate through the handshake; the result is read afterwards (verify_result)."""
    lib, pointer = _pointer(ctx)
    lib.SSL_CTX_set_verify(pointer, lib.SSL_CTX_get_verify_mode(pointer), _ACCEPT_ANY)


def set_client_ca_list(ctx: ssl.SSLContext, path: str) -> bool:
    """ssl_client_certificate's names, sent in the CertificateRequest (nginx's SSL_CTX_set_client_CA_list;
    ssl_trusted_certificate's are not); False when OpenSSL reads none."""
    lib, pointer = _pointer(ctx)
    names = lib.SSL_load_client_CA_file(path.encode())
    if not names:
        return False
    lib.SSL_CTX_set_client_CA_list(pointer, names)     # the context owns the list from here
    return True


def _ssl(sslobj: ssl.SSLObject) -> tuple[ctypes.CDLL, int]:
    """The SSL* of an SSLObject: CPython's PySSLSocket is PyObject_HEAD, the socket's weakref, `SSL *ssl`;
    checked against the SSL_CTX of the object's context (SNI may have switched it)."""
    lib, ctx = _pointer(sslobj.context)
    inner = sslobj._sslobj       # type: ignore[attr-defined]
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(id(inner) + head + ctypes.sizeof(ctypes.c_void_p)).value
    if not pointer or lib.SSL_get_SSL_CTX(pointer) != ctx:
        raise OpenSslUnavailable("the SSL of Python's SSLObject is not where CPython keeps it")
    return lib, pointer


def follow_verify(sslobj: ssl.SSLObject) -> None:
    """After SNI switched the object's context: its client verification too (nginx's servername
    callback does the same: SSL_set_SSL_CTX keeps the first context's verify mode)."""
    lib, pointer = _ssl(sslobj)
    _, ctx = _pointer(sslobj.context)
    lib.SSL_set_verify(pointer, lib.SSL_CTX_get_verify_mode(ctx), lib.SSL_CTX_get_verify_callback(ctx))
    lib.SSL_set_verify_depth(pointer, lib.SSL_CTX_get_verify_depth(ctx))


def verify_result(sslobj: ssl.SSLObject) -> tuple[int, str]:
    """The peer certificate's X509_V_* verify result and OpenSSL's words for it."""
    lib, pointer = _ssl(sslobj)
    code = int(lib.SSL_get_verify_result(pointer))
    return code, (lib.X509_verify_cert_error_string(code) or b"").decode("latin-1")


def _group_name(lib: ctypes.CDLL, nid: int) -> str:
    name = lib.OBJ_nid2sn(nid & 0xFFFF) if not nid & 0x01000000 else None     # TLSEXT_nid_unknown
    return name.decode("latin-1") if name else f"0x{nid & 0xFFFF:04x}"


def negotiated_group(sslobj: ssl.SSLObject) -> str:
    """$ssl_curve: the key exchange group's short name (prime256v1, X25519), else its number in hex."""
    lib, pointer = _ssl(sslobj)
    nid = int(lib.SSL_ctrl(pointer, SSL_CTRL_GET_NEGOTIATED_GROUP, 0, None))
    return _group_name(lib, nid) if nid > 0 else ""


def client_groups(sslobj: ssl.SSLObject) -> str:
    """$ssl_curves: the groups the client offered (SSL_get1_curves), joined by colons."""
    lib, pointer = _ssl(sslobj)
    count = int(lib.SSL_ctrl(pointer, SSL_CTRL_GET_GROUPS, 0, None))
    if count <= 0:
        return ""
    groups = (ctypes.c_int * count)()
    count = int(lib.SSL_ctrl(pointer, SSL_CTRL_GET_GROUPS, 0, ctypes.cast(groups, ctypes.c_void_p)))
    return ":".join(_group_name(lib, groups[i]) for i in range(min(count, len(groups))))


# SSL_CONF_FLAG_FILE | SERVER (or CLIENT) | CERTIFICATE, as nginx's ngx_ssl_conf_commands
_CONF_FLAGS = 0x02 | 0x20
_CONF_SERVER, _CONF_CLIENT = 0x08, 0x04


def conf_commands(ctx: ssl.SSLContext, commands: tuple[tuple[str, str], ...], server: bool) -> None:
    """`ssl_conf_command NAME VALUE` lines on the context; ValueError with nginx's words when OpenSSL
    refuses one."""
    lib, pointer = _pointer(ctx)
    cctx = lib.SSL_CONF_CTX_new()
    if not cctx:
        raise ValueError("SSL_CONF_CTX_new() failed")
    try:
        lib.SSL_CONF_CTX_set_flags(cctx, _CONF_FLAGS | (_CONF_SERVER if server else _CONF_CLIENT))
        lib.SSL_CONF_CTX_set_ssl_ctx(cctx, pointer)
        for name, value in commands:
            if lib.SSL_CONF_cmd(cctx, name.encode(), value.encode()) <= 0:
                raise ValueError(f'SSL_CONF_cmd("{name}", "{value}") failed')
        if lib.SSL_CONF_CTX_finish(cctx) != 1:
            raise ValueError("SSL_CONF_finish() failed")
    finally:
        lib.SSL_CONF_CTX_free(cctx)


def alpn_or_refuse(ctx: ssl.SSLContext, protocols: tuple[str, ...]) -> None:
    """nginx's stream ssl_alpn (ngx_stream_ssl_alpn_select): the first of `protocols` the client offers;
    a client offering ALPN and none of them ends the handshake (no_application_protocol), where Python's
    own callback would go on without ALPN."""
    lib, pointer = _pointer(ctx)
    wanted = [name.encode() for name in protocols]

    def select(_ssl: int | None, out: Any, outlen: Any, given: int | None, length: int,
               _arg: int | None) -> int:
        offered = ctypes.string_at(given, length) if given else b""
        offsets: dict[bytes, int] = {}
        at = 0
        while at < len(offered):
            size = offered[at]
            offsets.setdefault(offered[at + 1:at + 1 + size], at + 1)
            at += 1 + size
        for name in wanted:
            if name in offsets:
                out[0] = (given or 0) + offsets[name]
                outlen[0] = len(name)
                return SSL_TLSEXT_ERR_OK
        return SSL_TLSEXT_ERR_ALERT_FATAL

    callback = _ALPN_CALLBACK(select)
    ctx.sheer_alpn_callback = callback        # type: ignore[attr-defined]  # kept alive with the context
    lib.SSL_CTX_set_alpn_select_cb(pointer, callback, None)
