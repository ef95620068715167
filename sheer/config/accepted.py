"""Directives an existing nginx configuration carries that sheer reads, checks as nginx does, and says
(`sheer -t`, start-up) that it does nothing with: tuning that has no meaning in sheer (hash table sizes,
sendfile, accept_mutex...), what waits for a later part of sheer (gzip),
and `load_module`. Debian's stock nginx.conf and its default site pass `sheer -t` with them.

Each entry names why nothing is done; nothing here changes what sheer answers.
"""

from __future__ import annotations

import os

from sheer.config.errors import ConfigError, Source
from sheer.config.table import (
    EVENTS,
    HTTP,
    HTTP_ALL,
    MAIN,
    STREAM_ALL,
    Convert,
    Directive,
    Notice,
    NoticeLevel,
    entry,
)
from sheer.config.values import parse_flag, parse_number, parse_size, parse_time

_SIZING = "sheer sizes its tables itself: nothing to do"
_NO_CACHE = "sheer opens a file for each request (the kernel caches what it reads): no open file cache"
_NO_GZIP = "gzip is not implemented yet: responses go uncompressed"
_MEMORY = "sheer keeps request and response bodies in memory: no temporary files"
_BUFFERS = "sheer sizes its buffers itself: nothing to do"
_RELAYED = ("sheer passes a response on as it arrives, reading the upstream only as fast as the client "
            "takes it (nginx's proxy_buffering off, without its buffer limit)")
_STREAMED = ("sheer reads request bodies up to 64 KiB whole before sending them upstream and streams larger "
             "ones as they arrive")

# The dynamic modules sheer has built in: `load_module` of these loads nothing and is no error.
BUILT_IN = frozenset({"ngx_stream_module"})


def _flag(name: str) -> Convert:
    return lambda args, src: parse_flag(args[0], name, src)


def _number(name: str) -> Convert:
    return lambda args, src: parse_number(args[0], name, src)


def _size(name: str) -> Convert:
    return lambda args, src: parse_size(args[0], name, src)


def _time(name: str) -> Convert:
    return lambda args, src: parse_time(args[0], name, src)


def _says(reason: str, level: NoticeLevel = "notice") -> Notice:
    return lambda args: (level, reason)


def _temp_path(name: str) -> Convert:
    """ngx_conf_set_path_slot: a path, then up to three directory levels of 1 or 2 characters."""
    def convert(args: list[str], src: Source) -> list[str]:
        for level in args[1:]:
            if level not in ("1", "2"):
                raise ConfigError(f'invalid value "{level}" in "{name}" directive', src)
        return args
    return convert


_SSL_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def _event_method(args: list[str], src: Source) -> str:
    if args[0] not in ("epoll", "poll", "select"):
        raise ConfigError(f'invalid event type "{args[0]}"', src)
    return args[0]


def _gzip_http_version(args: list[str], src: Source) -> str:
    if args[0] not in ("1.0", "1.1"):
        raise ConfigError(f'invalid value "{args[0]}" in "gzip_http_version" directive, it must be "1.0" or '
                          '"1.1"', src)
    return args[0]


def module_of(path: str) -> str:
    """`modules/ngx_mail_module.so` -> `ngx_mail_module`."""
    name = os.path.basename(path)
    return name.removesuffix(".so")


def _load_module_notice(args: list[str]) -> tuple[NoticeLevel, str]:
    module = module_of(args[0])
    if module in BUILT_IN:
        return "notice", f"{module} is built into sheer: nothing to load"
    return "warn", (f"sheer does not have {module}: nothing is loaded, and a directive of that module is an "
                    "error")


def _sendfile_notice(args: list[str]) -> tuple[NoticeLevel, str] | None:
    # sheer sends files with sendfile() on plain connections whatever this says (TLS reads and writes)
    return None if args[0] == "on" else ("notice", ('sheer sends files with sendfile() where it can: "off" '
                                         "changes nothing"))


def _tcp_nodelay_notice(args: list[str]) -> tuple[NoticeLevel, str] | None:
    # uvloop sets TCP_NODELAY on every connection, as nginx's default `tcp_nodelay on` does
    return None if args[0] == "on" else ("notice", "sheer always sets TCP_NODELAY: \"off\" changes nothing")


def _buffers(args: list[str], src: Source) -> tuple[int, int]:
    """`proxy_buffers NUMBER SIZE`, as ngx_conf_set_bufs_slot reads it."""
    number = parse_number(args[0], "proxy_buffers", src, 1)
    return number, parse_size(args[1], "proxy_buffers", src)


def _server_tokens(args: list[str], src: Source) -> str:
    if args[0] not in ("on", "off", "build"):
        raise ConfigError(f'invalid value "{args[0]}"', src)     # nginx's ngx_conf_set_enum_slot
    return args[0]


def _server_tokens_notice(args: list[str]) -> tuple[NoticeLevel, str] | None:
    # `off` is what sheer always does: its Server header and error pages name no version
    said = 'sheer says "sheer" without a version in the Server header and its error pages, as "off" does'
    return None if args[0] == "off" else ("notice", said)


def _gzip_notice(args: list[str]) -> tuple[NoticeLevel, str] | None:
    return ("warn", _NO_GZIP) if args[0] == "on" else None


_SIZES = ("types_hash_max_size", "types_hash_bucket_size", "server_names_hash_max_size",
          "server_names_hash_bucket_size", "variables_hash_max_size", "variables_hash_bucket_size",
          "map_hash_max_size", "map_hash_bucket_size", "proxy_headers_hash_max_size",
          "proxy_headers_hash_bucket_size")
_SIZE_CONTEXTS = {"types_hash_max_size": HTTP_ALL, "types_hash_bucket_size": HTTP_ALL,
                  "proxy_headers_hash_max_size": HTTP_ALL, "proxy_headers_hash_bucket_size": HTTP_ALL}

TABLE: tuple[Directive, ...] = (
    # main and events: process and event-loop tuning that uvloop and the kernel already decide
    entry("load_module", {MAIN}, (1, 1), multi=True, notice=_load_module_notice),
    entry("pcre_jit", {MAIN}, (1, 1), _flag("pcre_jit"), notice=_says("sheer's regular expressions are "
                                                                        "Python's: nothing to compile")),
    entry("lock_file", {MAIN}, (1, 1), notice=_says("sheer's workers take no accept lock: no lock file")),
    entry("worker_priority", {MAIN}, (1, 1), notice=_says("not applied: the workers keep sheer's priority")),
    entry("timer_resolution", {MAIN}, (1, 1), _time("timer_resolution"),
          notice=_says("sheer reads the clock when it needs it: nothing to do")),
    entry("multi_accept", {EVENTS}, (1, 1), _flag("multi_accept"),
          notice=_says("sheer accepts every pending connection at once: nothing to do")),
    entry("accept_mutex", {EVENTS}, (1, 1), _flag("accept_mutex"),
          notice=_says("sheer's workers share listeners with SO_REUSEPORT: no accept mutex")),
    entry("accept_mutex_delay", {EVENTS}, (1, 1), _time("accept_mutex_delay"),
          notice=_says("sheer's workers share listeners with SO_REUSEPORT: no accept mutex")),
    entry("use", {EVENTS}, (1, 1), _event_method, notice=_says("sheer's event loop (uvloop) uses epoll")),
    # http: sending and sizing
    entry("sendfile", HTTP_ALL, (1, 1), _flag("sendfile"), notice=_sendfile_notice),
    entry("sendfile_max_chunk", HTTP_ALL, (1, 1), _size("sendfile_max_chunk"),
          notice=_says("sheer sends a file in as large pieces as the socket takes: nothing to do")),
    entry("open_file_cache", HTTP_ALL, (1, 2), notice=_says(_NO_CACHE)),
    entry("open_file_cache_valid", HTTP_ALL, (1, 1), _time("open_file_cache_valid"), notice=_says(_NO_CACHE)),
    entry("open_file_cache_min_uses", HTTP_ALL, (1, 1), _number("open_file_cache_min_uses"),
          notice=_says(_NO_CACHE)),
    entry("open_file_cache_errors", HTTP_ALL, (1, 1), _flag("open_file_cache_errors"),
          notice=_says(_NO_CACHE)),
    entry("tcp_nopush", HTTP_ALL, (1, 1), _flag("tcp_nopush"),
          notice=_says("sheer writes each response's head and body together: TCP_CORK is not set")),
    entry("tcp_nodelay", HTTP_ALL | STREAM_ALL, (1, 1), _flag("tcp_nodelay"), notice=_tcp_nodelay_notice),
    *(entry(name, _SIZE_CONTEXTS.get(name, {HTTP}), (1, 1), _number(name), notice=_says(_SIZING))
      for name in _SIZES),
    entry("client_body_temp_path", HTTP_ALL, (1, 4), _temp_path("client_body_temp_path"),
          notice=_says(_MEMORY)),
    entry("proxy_temp_path", HTTP_ALL, (1, 4), _temp_path("proxy_temp_path"), notice=_says(_MEMORY)),
    entry("client_body_buffer_size", HTTP_ALL, (1, 1), _size("client_body_buffer_size"),
          notice=_says(_MEMORY)),
    entry("client_body_in_single_buffer", HTTP_ALL, (1, 1), _flag("client_body_in_single_buffer"),
          notice=_says(_MEMORY)),
    entry("server_tokens", HTTP_ALL, (1, 1), _server_tokens, notice=_server_tokens_notice),
    # proxy buffering: sheer relays as data comes, with back-pressure both ways
    entry("proxy_buffering", HTTP_ALL, (1, 1), _flag("proxy_buffering"), notice=_says(_RELAYED)),
    entry("proxy_request_buffering", HTTP_ALL, (1, 1), _flag("proxy_request_buffering"),
          notice=_says(_STREAMED)),
    entry("proxy_buffer_size", HTTP_ALL | STREAM_ALL, (1, 1), _size("proxy_buffer_size"),
          notice=_says(_BUFFERS)),
    entry("proxy_buffers", HTTP_ALL, (2, 2), _buffers, notice=_says(_BUFFERS)),
    entry("proxy_busy_buffers_size", HTTP_ALL, (1, 1), _size("proxy_busy_buffers_size"),
          notice=_says(_BUFFERS)),
    entry("proxy_max_temp_file_size", HTTP_ALL, (1, 1), _size("proxy_max_temp_file_size"),
          notice=_says(_MEMORY)),
    entry("proxy_temp_file_write_size", HTTP_ALL, (1, 1), _size("proxy_temp_file_write_size"),
          notice=_says(_MEMORY)),
    # gzip, which every stock configuration turns on
    entry("gzip", HTTP_ALL, (1, 1), _flag("gzip"), notice=_gzip_notice),
    entry("gzip_vary", HTTP_ALL, (1, 1), _flag("gzip_vary"), notice=_says(_NO_GZIP)),
    entry("gzip_proxied", HTTP_ALL, (1, None), notice=_says(_NO_GZIP)),
    entry("gzip_comp_level", HTTP_ALL, (1, 1),
          lambda args, src: parse_number(args[0], "gzip_comp_level", src, 1, 9), notice=_says(_NO_GZIP)),
    entry("gzip_buffers", HTTP_ALL, (2, 2), notice=_says(_NO_GZIP)),
    entry("gzip_http_version", HTTP_ALL, (1, 1), _gzip_http_version, notice=_says(_NO_GZIP)),
    entry("gzip_types", HTTP_ALL, (1, None), notice=_says(_NO_GZIP)),
    entry("gzip_min_length", HTTP_ALL, (1, 1), _size("gzip_min_length"), notice=_says(_NO_GZIP)),
    entry("gzip_disable", HTTP_ALL, (1, None), notice=_says(_NO_GZIP)),
)
