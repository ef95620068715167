"""Dropping root in workers (`user`), keeping only the capability IP_TRANSPARENT needs."""

from __future__ import annotations

import ctypes
import grp
import os
import pwd

from sheer.config.model import Config
from sheer.io.logs import ErrorLogger

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
PR_SET_KEEPCAPS = 8
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class PrivilegeError(Exception):
    pass


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def needs_transparency(config: Config) -> bool:
    """Any `proxy_bind ... transparent` (or DSR, whose raw sender needs CAP_NET_RAW too)."""
    for server in (config.stream.servers if config.stream else ()):
        if server.proxy_bind is not None and server.proxy_bind.transparent:
            return True
    for http_server in (config.http.servers if config.http else ()):
        for location in http_server.locations:
            if location.proxy_bind is not None and location.proxy_bind.transparent:
                return True
    return False


def resolve_user(config: Config) -> tuple[int, int] | None:
    """The uid/gid workers switch to, or None when they keep the master's identity."""
    if config.user is None or os.geteuid() != 0:
        return None
    name, group = config.user
    try:
        entry = pwd.getpwnam(name)
    except (KeyError, ValueError):     # ValueError: a name libc cannot be given (an embedded NUL)
        raise PrivilegeError(f'getpwnam("{name!s:.64}") failed: no such user') from None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except (KeyError, ValueError):
            raise PrivilegeError(f'getgrnam("{group!s:.64}") failed: no such group') from None
    return entry.pw_uid, gid


def drop_privileges(config: Config, log: ErrorLogger, admin: bool = False) -> None:
    """Switch to `user`, keeping CAP_NET_RAW when transparency needs it and, with `admin`,
    CAP_NET_ADMIN (the health checker feeding the kernel's fast path through nftables)."""
    ids = resolve_user(config)
    if ids is None:
        if config.user is not None and os.geteuid() != 0:
            log.warning('the "user" directive makes sense only if the master process runs with '
                     "super-user privileges, ignored")
        return
    uid, gid = ids
    if uid == 0:
        return
    caps = (1 << CAP_NET_RAW if needs_transparency(config) else 0) | (1 << CAP_NET_ADMIN if admin else 0)
    keep = bool(caps)
    libc = ctypes.CDLL(None, use_errno=True)
    if keep and libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        log.log("alert", f"prctl(PR_SET_KEEPCAPS) failed ({ctypes.get_errno()}): transparent upstream "
                         "connections will fail")
        keep = False
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if keep:
        # As nginx does (1.13.8+): after setuid() only CAP_NET_RAW stays, effective and permitted;
        # it is what IP_TRANSPARENT and the DSR raw socket need, and nothing else (and the checker's
        # CAP_NET_ADMIN: nf_tables answers no netlink message without it, not even a read).
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        data[0].effective = data[0].permitted = caps
        if libc.capset(ctypes.byref(header), data) != 0:
            log.log("alert", f"capset(CAP_NET_RAW) failed ({ctypes.get_errno()}): transparent upstream "
                             "connections will fail")

