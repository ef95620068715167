"""Opening upstream connections: the one place that builds the proxy's upstream sockets."""

from __future__ import annotations

import asyncio
import errno
import os
import socket

from sheer.core.bind import BindTo
from sheer.io.sockets import BindError, bind_local

TIMED_OUT = "upstream timed out (110: Connection timed out)"


class UpstreamConnectError(Exception):
    """connect() to a peer failed or timed out; `timed_out` tells which, `message` is nginx's wording."""

    def __init__(self, message: str, timed_out: bool, local: BindError | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out
        self.local = local      # our side failed (bind, IP_TRANSPARENT): not the peer's fault


def connect_now(sock: socket.SocketType, address: tuple[str, int] | str) -> int:
    """Issue a non-blocking connect(): 0 (connected), EINPROGRESS, or the errno it failed with.

    Over veth or loopback the handshake usually completes inside the first call; asking again
    (0: connected, EALREADY: still in progress) saves a trip through the event loop."""
    code = sock.connect_ex(address)
    if code == errno.EINPROGRESS:
        code = sock.connect_ex(address)
        if code == errno.EALREADY:
            code = errno.EINPROGRESS
    return code


async def connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, address: tuple[str, int] | str,
                  timeout: float) -> None:
    """Non-blocking connect() of `sock` to a numeric `address`, within `timeout` seconds.

    Raises TimeoutError, or OSError with the connect() errno. Not `loop.sock_connect`: uvloop's
    resolves every address through getaddrinfo on its thread pool (it passes no socket type, so
    its numeric fast path never applies), a thread hand-off per upstream connection.
    """
    code = connect_now(sock, address)
    if code == 0:
        return
    if code != errno.EINPROGRESS:
        raise OSError(code, os.strerror(code))
    done = loop.create_future()

    def settle(result: BaseException | None) -> None:
        if not done.done():
            done.set_result(result)

    fd = sock.fileno()
    loop.add_writer(fd, settle, None)
    timer = loop.call_later(timeout, settle, TimeoutError())
    try:
        failure = await done
    finally:
        timer.cancel()
        loop.remove_writer(fd)
    if failure is not None:
        raise failure
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))


# The C socket type: its constructor and close() are C, where socket.socket's are Python code; the relay
# keeps only the descriptor of a connected upstream socket (sheer.io.tcp_relay).
new_socket = socket.SocketType
_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC


def start_connect(address: tuple[str, int] | str, bind: BindTo | None) -> tuple[socket.SocketType, bool]:
    """A non-blocking TCP socket toward `address`, bound per proxy_bind, its connect() issued.

    Returns the socket and whether it is already connected (over veth or loopback the handshake
    usually completes inside the connect() call); otherwise an event on the socket means done or
    failed: calling connect() again tells which. Raises UpstreamConnectError, with `local` set
    when our side failed."""
    # inline: this runs per upstream connection (a unix-domain socket's address is its path, a str)
    if address.__class__ is str:
        family = socket.AF_UNIX
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    try:
        sock = new_socket(family, _STREAM)
    except OSError as exc:        # out of descriptors or memory: our side, as nginx's socket() alert
        problem = BindError(f"socket() failed ({exc.errno}: {exc.strerror})", level="alert",
                            errno=exc.errno or 0)
        raise UpstreamConnectError(problem.message, False, local=problem) from None
    try:
        if bind is not None:
            bind_family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
            if family != socket.AF_UNIX and bind_family != family:
                raise BindError(f'local address "{bind}" and upstream "{address[0]}" are of different '
                                "address families", level="error")
            bind_local(sock, family, socket.SOCK_STREAM, bind.host, bind.port, bind.transparent)
        code = sock.connect_ex(address)         # connect_now(), inline: a frame less per connection
        if code == errno.EINPROGRESS:
            code = sock.connect_ex(address)
            if code == errno.EALREADY:
                code = errno.EINPROGRESS
        if code not in (0, errno.EINPROGRESS):
            raise UpstreamConnectError(f"connect() failed ({code}: {os.strerror(code)})", False)
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BindError as exc:
        sock.close()
        raise UpstreamConnectError(exc.message, False, local=exc) from None
    except BaseException:
        sock.close()
        raise
    return sock, code == 0
