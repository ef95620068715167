"""Socket recipes. Each kernel trick lives in one function, with the reason next to it."""

from __future__ import annotations

import errno
import socket

from sheer.config.model import Listen

# Python 3.11's socket module lacks these Linux constants (linux/in.h, linux/in6.h).
IP_FREEBIND = 15
IP_PKTINFO = 8
IP_RECVERR = 11
IP_TRANSPARENT = 19
IP_RECVORIGDSTADDR = 20
IP_BIND_ADDRESS_NO_PORT = 24
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
IPV6_TRANSPARENT = 75


class ListenError(Exception):
    """A listening socket could not be made; the message uses nginx's wording."""


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listener(listen: Listen) -> socket.socket:
    """A listening socket for one worker slot.

    SO_REUSEPORT: every worker gets its own socket on the same address, so the kernel spreads
    connections (and, hashed by 4-tuple, a UDP client's datagrams) across workers without a
    shared accept queue. The master keeps these sockets open across reloads, so a connection
    queued on a slot is accepted by the slot's next worker instead of being reset.
    """
    family = family_of(listen.bind_host)
    kind = socket.SOCK_DGRAM if listen.udp else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(listen.ipv6only))
        if listen.udp and listen.is_wildcard:
            # A wildcard UDP listener must answer from the address the client wrote to:
            # IP_PKTINFO reports it on receive and selects it again on send.
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        sock.bind((listen.bind_host, listen.port))
        if not listen.udp:
            sock.listen(listen.backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(_bind_message(listen, exc)) from None
    return sock


def _bind_message(listen: Listen, exc: OSError) -> str:
    where = f"{listen.bind_host}:{listen.port}" if listen.family == 4 else f"[{listen.bind_host}]:{listen.port}"
    text = f"bind() to {where} failed ({exc.errno}: {exc.strerror})"
    if exc.errno == errno.EACCES:
        text += "; ports below 1024 need root or CAP_NET_BIND_SERVICE"
    elif exc.errno == errno.EADDRINUSE:
        text += "; another process listens there (ss -lntup shows which)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        text += "; the address is not on any interface of this host"
    return text


def upstream_stream_socket(family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock
