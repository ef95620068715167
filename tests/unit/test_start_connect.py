"""start_connect: our side's failures (no descriptors left) are local errors, as nginx's socket() alert."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from sheer.core.bind import BindTo
from sheer.io import sockets, upstream_connect
from sheer.io.upstream_connect import UpstreamConnectError, start_connect


def no_descriptors(*args: object, **kwargs: object) -> socket.socket:
    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


@pytest.mark.parametrize("bind", [None, BindTo("127.0.0.1", 0, False)])
def test_out_of_descriptors_is_our_side_not_the_peers(monkeypatch: pytest.MonkeyPatch,
                                                      bind: BindTo | None) -> None:
    monkeypatch.setattr(upstream_connect.socket, "socket", no_descriptors)
    monkeypatch.setattr(sockets.socket, "socket", no_descriptors)
    monkeypatch.setattr(upstream_connect, "new_socket", no_descriptors)     # the C type, made directly
    with pytest.raises(UpstreamConnectError) as caught:
        start_connect(("127.0.0.1", 9), bind)
    assert caught.value.local is not None and caught.value.local.level == "alert"
    assert caught.value.message == "socket() failed (24: Too many open files)"


def test_a_unix_peer_is_connected_by_its_path(tmp_path: object) -> None:
    path = f"{tmp_path}/up.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(1)
        sock, done = start_connect(path, None)
        try:
            assert sock.family == socket.AF_UNIX and done      # a unix connect() completes at once
            peer, _ = server.accept()
            peer.close()
        finally:
            sock.close()
    with pytest.raises(UpstreamConnectError) as caught:         # nobody listens there any more
        start_connect(path, None)
    assert caught.value.local is None and caught.value.message.startswith("connect() failed (111")


@pytest.mark.parametrize(("bind", "message", "level"), [
    (BindTo("127.0.0.1", 0, False), "bind(127.0.0.1) failed (22: Invalid argument)", "crit"),
    (BindTo("192.0.2.1", 0, True), "setsockopt(IP_TRANSPARENT) failed (95: Operation not supported)",
     "alert"),
])
def test_proxy_bind_towards_a_unix_peer_fails_as_nginx(tmp_path: object, bind: BindTo, message: str,
                                                       level: str) -> None:
    """nginx (ngx_event_connect_peer) binds proxy_bind's address whatever the peer: the kernel refuses."""
    with pytest.raises(UpstreamConnectError) as caught:
        start_connect(f"{tmp_path}/up.sock", bind)
    local = caught.value.local
    assert local is not None and local.message == message and local.level == level
    assert "unix-domain socket" in local.fix
