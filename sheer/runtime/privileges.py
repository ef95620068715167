"""Dropping root in workers (`user`)."""

from __future__ import annotations

import grp
import os
import pwd

from sheer.config.model import Config
from sheer.io.logs import ErrorLogger


class PrivilegeError(Exception):
    pass


def resolve_user(config: Config) -> tuple[int, int] | None:
    """The uid/gid workers switch to, or None when they keep the master's identity."""
    if config.user is None or os.geteuid() != 0:
        return None
    name, group = config.user
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise PrivilegeError(f'getpwnam("{name}") failed: no such user') from None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivilegeError(f'getgrnam("{group}") failed: no such group') from None
    return entry.pw_uid, gid


def drop_privileges(config: Config, log: ErrorLogger) -> None:
    ids = resolve_user(config)
    if ids is None:
        if config.user is not None and os.geteuid() != 0:
            log.warn('the "user" directive makes sense only if the master process runs with '
                     "super-user privileges, ignored")
        return
    uid, gid = ids
    if uid == 0:
        return
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
