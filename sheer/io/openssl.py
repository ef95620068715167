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
