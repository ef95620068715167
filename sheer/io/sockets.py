"""Socket recipes. Each kernel trick lives in one function, with the reason next to it."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from sheer.config.model import Listen

# Python 3.11's socket module lacks these Linux constants (linux/in.h, linux/in6.h).
IP_PKTINFO = 8
IP_TRANSPARENT = 19
IP_BIND_ADDRESS_NO_PORT = 24
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
IPV6_TRANSPARENT = 75


class ListenError(Exception):
    """A listening socket could not be made; the message uses nginx's wording."""


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def as_address(raw: Any) -> Any:
    """An address from accept() or getsockname() as sheer's variables take it: (host, port), or for
    a unix-domain socket ("unix:/path", None), "unix:" alone for a client's unnamed socket (nginx's
    $remote_addr, with an empty $remote_port)."""
    return ("unix:" + raw, None) if isinstance(raw, str) else raw


def listening_on(sock: socket.socket) -> tuple[str, int]:
    """A listener's own address as its Listen has it: (host, port), ("unix:/path", 0)."""
    name = sock.getsockname()
    return ("unix:" + name, 0) if isinstance(name, str) else (name[0], name[1])


def shown(host: str, port: int) -> str:
    """An address as nginx prints it: 1.2.3.4:80, [::1]:80, unix:/path."""
    if host.startswith("unix:"):
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address_family(address: tuple[str, int] | str) -> socket.AddressFamily:
    """The family of a peer's socket address: a unix-domain socket's is its path (a str)."""
    if isinstance(address, str):
        return socket.AF_UNIX
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


def listener(listen: Listen) -> socket.socket:
    """A listening socket for one worker slot.

    SO_REUSEPORT: every worker gets its own socket on the same address, so the kernel spreads
    connections (and, hashed by 4-tuple, a UDP client's datagrams) across workers without a
    shared accept queue. The master keeps these sockets open across reloads, so a connection
    queued on a slot is accepted by the slot's next worker instead of being reset.
    """
    if listen.unix:
        return unix_listener(listen)
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
        _buffers(sock, listen)
        sock.bind((listen.bind_host, listen.port))
        if not listen.udp:
            sock.listen(listen.backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(_bind_message(listen, exc)) from None
    return sock


def _buffers(sock: socket.socket, listen: Listen) -> None:
    """`listen ... sndbuf= rcvbuf=`: set on the listening socket, before listen(), so that every accepted
    connection inherits them (the kernel copies them, as nginx relies on); the kernel doubles the value
    for its bookkeeping and caps it at net.core.wmem_max / rmem_max, as for nginx."""
    if listen.sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, listen.sndbuf)
    if listen.rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, listen.rcvbuf)


def unix_listener(listen: Listen) -> socket.socket:
    """`listen unix:/path`: one socket, which every worker accepts from (SO_REUSEPORT does not
    spread unix-domain connections). As nginx (ngx_open_listening_sockets): a file already at the
    path is not removed (bind() says 98: Address already in use), and the socket is made
    read-write for everyone (chmod 0666: the permissions of its directory decide who may connect)."""
    path = str(listen.sockaddr)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _buffers(sock, listen)
        sock.bind(path)
        sock.listen(listen.backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(_bind_message(listen, exc)) from None
    try:
        os.chmod(path, 0o666)
    except OSError as exc:
        sock.close()
        remove_unix_socket(path)
        raise ListenError(f'chmod() "{path}" failed ({exc.errno}: {exc.strerror})') from None
    return sock


def remove_unix_socket(path: str) -> str | None:
    """Remove a unix-domain listener's file (at exit, or when a reload drops it, as nginx does);
    None, or nginx's message when that failed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unlink() {path} failed ({exc.errno}: {exc.strerror})"
    return None


def unix_listen_problem(listen: Listen) -> str | None:
    """What bind() would say of a unix-domain listener's path, found without binding (for -t, when
    sheer may already hold the socket there): a missing directory, or a file that is not a socket."""
    path = str(listen.sockaddr)
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return f"bind() to {listen.host} failed ({errno.ENOENT}: {os.strerror(errno.ENOENT)})"
    if os.path.lexists(path) and not stat.S_ISSOCK(os.lstat(path).st_mode):
        return (f"bind() to {listen.host} failed ({errno.EADDRINUSE}: {os.strerror(errno.EADDRINUSE)}); "
                f"{path} is not a socket")
    return None


def ensure_unclaimed(listen: Listen) -> None:
    """Refuse an address another process (sheer, nginx, anything) already has bound.

    Every listener of sheer sets SO_REUSEPORT, and a same-user SO_REUSEPORT bind always succeeds
    next to another SO_REUSEPORT socket: a second `sheer -c same.conf` would silently split the
    traffic with the first. So before the first socket of an address is made, a probe binds it
    without SO_REUSEPORT: that fails (98: Address already in use) when any socket holds it, as
    nginx's own bind() would. TCP keeps SO_REUSEADDR (connections in TIME_WAIT are no conflict,
    a listener is); UDP sets nothing, since SO_REUSEADDR lets UDP sockets share an address.
    The master's workers and generations share the sockets it already holds, never probed again.
    """
    if listen.unix:
        return        # bind() itself refuses a path that has a file (98: Address already in use)
    family = family_of(listen.bind_host)
    probe = socket.socket(family, socket.SOCK_DGRAM if listen.udp else socket.SOCK_STREAM)
    try:
        if not listen.udp:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(listen.ipv6only))
        probe.bind((listen.bind_host, listen.port))
    except OSError as exc:
        raise ListenError(_bind_message(listen, exc)) from None
    finally:
        probe.close()


def _bind_message(listen: Listen, exc: OSError) -> str:
    if listen.unix:
        text = f"bind() to {listen.host} failed ({exc.errno}: {exc.strerror})"
        if exc.errno == errno.EADDRINUSE:
            text += ("; a file is at that path: a running server's socket, or one left by a process that is "
                     "gone (remove it)")
        elif exc.errno == errno.ENOENT:
            text += f"; create the directory {os.path.dirname(str(listen.sockaddr))}"
        return text
    host = listen.bind_host if listen.family == 4 else f"[{listen.bind_host}]"
    where = f"{host}:{listen.port}"
    text = f"bind() to {where} failed ({exc.errno}: {exc.strerror})"
    if exc.errno == errno.EACCES:
        text += "; ports below 1024 need root or CAP_NET_BIND_SERVICE"
    elif exc.errno == errno.EADDRINUSE:
        text += "; another process listens there (ss -lntup shows which)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        text += "; the address is not on any interface of this host"
    return text



class BindError(Exception):
    """Making the upstream socket's local side failed: nginx's message, its level, and the fix."""

    def __init__(self, message: str, fix: str = "", level: str = "crit", errno: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.level = level
        self.errno = errno          # the system call's, when one failed (counted by errno)

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}" if self.fix else self.message

    def describe(self, context: str) -> str:
        """nginx's line: `<message> while connecting to upstream, <context>`, then the fix."""
        line = f"{self.message} while connecting to upstream, {context}"
        return f"{line}; {self.fix}" if self.fix else line


_TRANSPARENT_FIX = ("IP_TRANSPARENT needs CAP_NET_RAW or CAP_NET_ADMIN: run sheer as root, or grant the "
                    "capability (setcap cap_net_raw+ep on the interpreter, or systemd "
                    "AmbientCapabilities=CAP_NET_RAW)")


def bound_socket(family: socket.AddressFamily, kind: socket.SocketKind, host: str, port: int,
                 transparent: bool) -> socket.socket:
    """A non-blocking upstream socket bound to `host:port` (proxy_bind): see `bind_local`."""
    # SOCK_NONBLOCK: non-blocking from socket() on, without an ioctl(FIONBIO) of its own
    sock = socket.socket(family, kind | socket.SOCK_NONBLOCK)
    try:
        bind_local(sock, family, kind, host, port, transparent)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_local(sock: socket.SocketType, family: int, kind: int, host: str, port: int,
               transparent: bool) -> None:
    """Bind an upstream socket to `host:port` (proxy_bind), possibly not a local address.

    IP_TRANSPARENT lets bind() take a foreign address (the client's) and makes the kernel accept
    the replies to it on this socket, once routing delivers them locally. For TCP with port 0,
    IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), so many connections can share
    one source address without exhausting ports at bind() time. For UDP bound to a specific port
    (the client's own, for DSR), SO_REUSEADDR lets two datagrams from the same client ip:port in
    quick succession each have their socket (nginx does the same, for the same reason).
    """
    unix = family == socket.AF_UNIX
    if transparent:
        # nginx (ngx_event_connect_set_transparent) picks the option by the local address's family
        level, option, name = _TRANSPARENT[family_of(host) if unix else family]
        try:
            sock.setsockopt(level, option, 1)
        except OSError as exc:
            fix = _TRANSPARENT_FIX if exc.errno == errno.EPERM else _UNIX_PEER_FIX if unix else ""
            raise BindError(f"setsockopt({name}) failed ({exc.errno}: {exc.strerror})", fix, "alert",
                            exc.errno or 0) from None
    if unix:
        # nginx (ngx_event_connect_peer) binds proxy_bind's address whatever the peer's family: the
        # kernel refuses an IP address on a unix-domain socket, and the connection fails as nginx's
        raise BindError(f"bind({host}) failed ({errno.EINVAL}: {os.strerror(errno.EINVAL)})", _UNIX_PEER_FIX,
                        errno=errno.EINVAL)
    if kind == socket.SOCK_STREAM and port == 0:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    if kind == socket.SOCK_DGRAM and port != 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        where = f"{host}:{port}" if port else host
        fix = ""
        if exc.errno == errno.EADDRNOTAVAIL and not transparent:
            fix = ("to bind a foreign address (the client's), add the `transparent` parameter to "
                   "proxy_bind")
        raise BindError(f"bind({where}) failed ({exc.errno}: {exc.strerror})", fix,
                        errno=exc.errno or 0) from None


_UNIX_PEER_FIX = ("the upstream is a unix-domain socket, which has no IP address to bind: turn proxy_bind "
                  "off where the upstream is unix:")

_TRANSPARENT: dict[int, tuple[int, int, str]] = {
    socket.AF_INET: (socket.IPPROTO_IP, IP_TRANSPARENT, "IP_TRANSPARENT"),
    socket.AF_INET6: (socket.IPPROTO_IPV6, IPV6_TRANSPARENT, "IPV6_TRANSPARENT"),
}


def can_be_transparent() -> str | None:
    """None when this process may set IP_TRANSPARENT; otherwise why not, with the fix."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.setsockopt(socket.IPPROTO_IP, IP_TRANSPARENT, 1)
    except OSError as exc:
        return f"setsockopt(IP_TRANSPARENT) failed ({exc.errno}: {exc.strerror}); {_TRANSPARENT_FIX}"
    finally:
        probe.close()
    return None


def shut_wr(sock: socket.socket) -> None:
    sock.shutdown(socket.SHUT_WR)


def on_socket(fd: int, family: int, call: Callable[[socket.socket], Any]) -> Any:
    """A socket call the relay's raw descriptors need now and then (getsockname, shutdown): made through
    a socket object lent the descriptor, which keeps it open when it goes."""
    sock = socket.socket(family, socket.SOCK_STREAM, 0, fd)
    try:
        return call(sock)
    finally:
        sock.detach()
