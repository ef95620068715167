"""What `sheer -t` checks beyond syntax: that logs can be opened and users exist (as nginx -t does)."""

from __future__ import annotations

import os

from sheer.config.errors import ConfigError
from sheer.config.model import Config, ErrorLog
from sheer.io.http.upstream_tls import upstream_context
from sheer.io.sockets import can_be_transparent, unix_listen_problem
from sheer.io.syslog import SyslogError, syslog_sink
from sheer.io.tls import key_warnings
from sheer.io.tls import listeners as tls_listeners
from sheer.runtime.privileges import PrivilegeError, needs_transparency, resolve_user


def _files(log: ErrorLog) -> list[str]:
    """The files a context's error logs write (stderr and syslog are no files)."""
    return [each.path for each in (log, *log.also) if each.syslog is None]


def _syslog_problems(config: Config) -> list[str]:
    """nginx resolves a syslog server's name when it reads the configuration: so does -t."""
    logs = [config.error_log]
    logs += [server.error_log for server in (config.stream.servers if config.stream else ())
             if server.error_log]
    logs += [location.error_log for server in (config.http.servers if config.http else ())
             for location in server.locations if location.error_log]
    problems = []
    for log in logs:
        for each in (log, *log.also):
            if each.syslog is not None:
                try:
                    syslog_sink(each.syslog)
                except SyslogError as exc:
                    problems.append(str(exc))
    return list(dict.fromkeys(problems))


def _log_paths(config: Config) -> list[str]:
    paths = list(_files(config.error_log))
    paths += config.stream.log_files if config.stream else ()
    paths += config.http.log_files if config.http else ()
    for server in (config.stream.servers if config.stream else ()):
        paths += [log.path for log in server.access_logs if log.variable_path is None]
        if server.error_log:
            paths += _files(server.error_log)
    for http_server in (config.http.servers if config.http else ()):
        for location in http_server.locations:
            paths += [log.path for log in location.access_logs if log.variable_path is None]
            if location.error_log:
                paths += _files(location.error_log)
    return [path for path in dict.fromkeys(paths) if path not in ("stderr", "stdout")]


def check(config: Config, tls: bool = True) -> list[str]:
    """What would stop `config` from serving. `tls=False`: the caller makes the TLS contexts itself
    right after (each file read once, as nginx: an ssl_password_file may be a fifo)."""
    problems: list[str] = _syslog_problems(config)
    for path in _log_paths(config):
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            problems.append(f'open() "{path}" failed (2: No such file or directory): '
                            f"create {directory} or set the prefix with -p")
        elif not os.access(path if os.path.exists(path) else directory, os.W_OK):
            problems.append(f'open() "{path}" failed (13: Permission denied)')
    for listen in config.listens:
        if listen.unix:
            problem = unix_listen_problem(listen)   # what bind() would say, without taking the path
            if problem is not None:
                problems.append(problem)
    try:
        resolve_user(config)
    except PrivilegeError as exc:
        problems.append(str(exc))
    try:
        if tls:
            tls_listeners(config)    # every certificate, key, CA, dhparam and ticket key file, loaded
        for server in (config.http.servers if config.http else ()):
            for location in server.locations:
                if location.proxy_ssl is not None:
                    upstream_context(location.proxy_ssl)    # proxy_ssl_trusted_certificate, ...
    except ConfigError as exc:
        problems.append(str(exc))
    return problems




def warnings(config: Config) -> list[str]:
    """Things that let sheer start but will hurt: said by `-t` and at start-up."""
    found: list[str] = []
    if needs_transparency(config):
        why = can_be_transparent()
        if why is not None:
            found.append(f"transparent upstream connections will fail: {why}")
    found.extend(key_warnings(config))
    for server in (config.stream.servers if config.stream else ()):
        if server.dsr and server.dsr_without_health_check:
            where = f"{server.source}: " if server.source else ""
            found.append(f"{where}direct server return without an active health check "
                         "(dsr_without_health_check on): a dead upstream keeps getting its share of the "
                         "traffic")
    return found
