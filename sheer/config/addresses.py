"""The arguments of `listen` and of an upstream's `server`: an address (inet or unix) and nginx's
parameters, checked with nginx's messages."""

from __future__ import annotations

from typing import Any

from sheer.config.errors import ConfigError, Source
from sheer.config.model import Listen, UpstreamServer
from sheer.config.values import parse_flag, parse_host_port, parse_number, parse_size, parse_time


def _port_range(text: str, src: Source) -> tuple[str, int]:
    """`ADDRESS:FIRST-LAST` (or `FIRST-LAST`), nginx's port range of `listen` (1.27.3): the address with
    its first port, and the last one (0 when no range is written)."""
    if text[:5].lower() == "unix:":
        return text, 0
    head, colon, ports = text.rpartition(":")
    if "-" not in ports or (colon and head.startswith("[") and not head.endswith("]")):
        return text, 0
    first, _, last = ports.partition("-")
    if not (last.isascii() and last.isdigit()) or not 0 < int(last) < 65536:
        raise ConfigError(f'invalid port in "{text}" of the "listen" directive', src)
    if first.isascii() and first.isdigit() and int(first) > int(last):
        raise ConfigError(f'invalid port range in "{text}" of the "listen" directive', src)
    return head + colon + first, int(last)


def listen(args: list[str], src: Source) -> Listen:
    written, port_end = _port_range(args[0], src)
    try:
        address = parse_host_port(written, src, wildcard_ok=True, port_only_ok=True)
    except ConfigError as exc:
        if port_end and exc.message == f'invalid port in "{written}"':
            raise ConfigError(f'invalid port in "{args[0]}" of the "listen" directive', src) from None
        if not exc.message.endswith("unix domain socket" + f' in "{args[0]}"'):
            raise
        raise ConfigError(f'{exc.message} of the "listen" directive', src) from None
    if address.port is None and not address.unix:
        if args[0].isdigit():
            raise ConfigError(f'invalid port in "{args[0]}" of the "listen" directive', src)
        address = type(address)(address.host, 0)  # no port written: http uses 80, stream refuses it
    udp = reuseport = default_server = False
    ipv6only = True
    backlog = 511
    buffers: dict[str, int] = {}
    proxy_protocol = ssl = http2 = False
    for param in args[1:]:
        if param == "udp":
            udp = True
        elif param == "reuseport":
            reuseport = True
        elif param in ("default_server", "default"):
            default_server = True
        elif param in ("bind", "deferred", "so_keepalive=on"):
            pass  # sheer always binds each listen address itself and always accepts on every worker
        elif param.startswith("backlog="):
            backlog = parse_number(param[8:], "listen backlog", src, 1)
        elif param.startswith(("sndbuf=", "rcvbuf=")):
            name, _, value = param.partition("=")
            try:
                buffers[name] = parse_size(value, name, src)
            except ConfigError:
                raise ConfigError(f'invalid {name} "{value}"', src) from None
        elif param.startswith("ipv6only="):
            ipv6only = parse_flag(param[9:], "listen ipv6only", src)
        elif param == "proxy_protocol":
            proxy_protocol = True
        elif param == "ssl":
            ssl = True
        elif param == "http2":
            http2 = True              # accepted, with a -t notice: HTTP/1.1 is served (sheer.config.tls)
        elif param == "quic":
            raise ConfigError(f'the "{param}" parameter of "listen" is not supported', src)
        else:
            raise ConfigError(f'invalid parameter "{param}"', src)
    if udp and proxy_protocol:
        raise ConfigError('"proxy_protocol" parameter is incompatible with "udp"', src)
    if udp and ssl:
        raise ConfigError('"ssl" parameter is incompatible with "udp"', src)
    if address.unix and udp:
        raise ConfigError(f'"listen {args[0]} udp": unix-domain datagram sockets are not supported', src)
    return Listen(address.host, address.port or 0, udp, reuseport, ipv6only, backlog, src, proxy_protocol,
                  args[0], default_server=default_server, ssl=ssl, http2=http2,
                  sndbuf=buffers.get("sndbuf"), rcvbuf=buffers.get("rcvbuf"), port_end=port_end)


def upstream_server(args: list[str], src: Source) -> UpstreamServer:
    try:
        address = parse_host_port(args[0], src)
    except ConfigError as exc:
        if not exc.message.endswith("unix domain socket" + f' in "{args[0]}"'):
            raise
        raise ConfigError(exc.message.replace(' in "', ' in upstream "'), src) from None
    options: dict[str, Any] = {}
    for param in args[1:]:
        key, _, value = param.partition("=")
        if key == "weight" and value:
            options["weight"] = parse_number(value, "weight", src, 1)
        elif key == "max_fails" and value:
            options["max_fails"] = parse_number(value, "max_fails", src)
        elif key == "fail_timeout" and value:
            options["fail_timeout"] = parse_time(value, "fail_timeout", src)
        elif key == "max_conns" and value:
            options["max_conns"] = parse_number(value, "max_conns", src)
        elif param in ("backup", "down", "resolve"):
            options[param] = True
        elif key in ("service", "slow_start", "route", "drain"):
            raise ConfigError(f'the "{key}" parameter of "server" is not supported', src)
        else:
            raise ConfigError(f'invalid parameter "{param}"', src)
    # The port is filled in by the loader: http defaults to 80, stream requires one.
    return UpstreamServer(address.host, address.port or 0, source=src, text=args[0], **options)
