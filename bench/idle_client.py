"""Holds many idle flows open through the proxy, from the client namespace, then waits.

    idle_client.py tcp ADDR PORT COUNT SECONDS
    idle_client.py udp ADDR PORT COUNT SECONDS SRC [SRC ...]

Prints "ready N" once N flows are open (TCP: connected; UDP: one datagram sent from N distinct
source ip:port pairs), then keeps them until stdin closes or SECONDS pass. Standard library only:
it runs with whatever Python is at hand inside the namespace."""

from __future__ import annotations

import os
import resource
import select
import selectors
import socket
import sys
import time


def _hold(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
        if ready and not os.read(sys.stdin.fileno(), 4096):
            return


def tcp(addr: str, port: int, count: int, seconds: float) -> None:
    socks: list[socket.socket] = []
    pending = 0
    poller = selectors.DefaultSelector()  # epoll: descriptors beyond 1024
    deadline = time.monotonic() + seconds
    while len(socks) < count and time.monotonic() < deadline:
        # at most 256 handshakes in flight: the proxy's accept backlog stays short
        while pending < 256 and len(socks) + pending < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((addr, port))
            poller.register(s, selectors.EVENT_WRITE)
            pending += 1
        for key, _ in poller.select(1.0):
            s = key.fileobj  # type: ignore[assignment]
            poller.unregister(s)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                socks.append(s)
            else:
                s.close()
    print(f"ready {len(socks)}", flush=True)
    _hold(max(0.0, deadline - time.monotonic()))


def udp(addr: str, port: int, count: int, seconds: float, sources: list[str], rate: float = 15000) -> None:
    # two passes over the same source ports: a datagram the proxy dropped while busy creating
    # sessions gets a second chance; one that finds its session only refreshes it
    for _ in range(2):
        sent = _udp_pass(addr, port, count, sources, rate)
    print(f"ready {sent}", flush=True)
    _hold(seconds)


def _udp_pass(addr: str, port: int, count: int, sources: list[str], rate: float) -> int:
    sent = 0
    started = time.monotonic()
    payload = b"idle session\n"
    share = -(-count // len(sources))
    for i, src in enumerate(sources):
        for sport in range(1024, 65536):
            if sent >= min(count, share * (i + 1)):
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((src, sport))
                s.sendto(payload, (addr, port))
                sent += 1
            except OSError:
                pass
            finally:
                s.close()
            if sent % 1000 == 0:
                # paced: a proxy that creates one session per datagram must not see its queue overflow
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    return sent


def main(argv: list[str]) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mode, addr, port, count, seconds = argv[:5]
    if mode == "tcp":
        tcp(addr, int(port), int(count), float(seconds))
    else:
        udp(addr, int(port), int(count), float(seconds), argv[5:])


if __name__ == "__main__":
    main(sys.argv[1:])
