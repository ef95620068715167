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
