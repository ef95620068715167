"""Health probes: one TCP, UDP or HTTP check of one peer, with its timeouts; verdicts from core.

Probes always come from the proxy's own address (no proxy_bind, never transparent): the reply
of a DSR or transparent upstream must come back to this socket, not to a client.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket

from sheer.config.health import HealthCheck
from sheer.core import hcmatch
from sheer.core.hcmatch import Verdict
from sheer.io.sockets import family_of

READ_LIMIT = 65536 + 16384


def _failed(call: str, exc: OSError) -> Verdict:
    code = exc.errno or errno.EIO
    return Verdict(False, f"{call} failed ({code}: {os.strerror(code)})")


_TIMED_OUT = "timed out (110: Connection timed out)"


async def _connect(host: str, port: int,
                   check: HealthCheck) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | Verdict:
    """The connected streams, or the failed verdict of the connect."""
    try:
        async with asyncio.timeout(check.connect_timeout):
            if host.startswith("unix:"):        # a unix-domain peer: `port=` has nothing to apply to
                return await asyncio.open_unix_connection(host[5:])
            return await asyncio.open_connection(host, port)
    except TimeoutError:
        return Verdict(False, f"connect() {_TIMED_OUT}")
    except OSError as exc:
        return _failed("connect()", exc)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while len(data) < READ_LIMIT:
        chunk = await reader.read(READ_LIMIT - len(data))
        if not chunk:
            break
        data += chunk
    return data


async def tcp_probe(host: str, port: int, check: HealthCheck) -> Verdict:
    """Connect; with a match, send its bytes and read until the expectation is met or the peer closes."""
    opened = await _connect(host, port, check)
    if isinstance(opened, Verdict):
        return opened
    reader, writer = opened
    try:
        payload = hcmatch.probe_payload(check)
        if payload:
            writer.write(payload)
        if not hcmatch.expects_reply(check):
            return hcmatch.PASSED
        data = b""
        async with asyncio.timeout(check.timeout):
            while len(data) < READ_LIMIT:
                chunk = await reader.read(READ_LIMIT - len(data))
                if not chunk:
                    break
                data += chunk
                if hcmatch.stream_reply(check, data).passed:
                    return hcmatch.PASSED
        return hcmatch.stream_reply(check, data)
    except TimeoutError:
        return Verdict(False, f"upstream {_TIMED_OUT} while reading the reply")
    except OSError as exc:
        return _failed("recv()", exc)
    finally:
        writer.close()


async def http_probe(host: str, port: int, check: HealthCheck, host_header: str) -> Verdict:
    opened = await _connect(host, port, check)
    if isinstance(opened, Verdict):
        return opened
    reader, writer = opened
    try:
        writer.write(hcmatch.http_request(check, host_header))
        async with asyncio.timeout(check.timeout):
            data = await _read_all(reader)
        return hcmatch.http_reply(check, hcmatch.parse_http_reply(data))
    except TimeoutError:
        return Verdict(False, f"upstream {_TIMED_OUT} while reading the response")
    except OSError as exc:
        return _failed("recv()", exc)
    finally:
        writer.close()


async def udp_probe(host: str, port: int, check: HealthCheck) -> Verdict:
    """Send the probe on a connected socket. Without `expect`, the peer passes unless an ICMP
    port unreachable comes back within the timeout; with one, the matching reply must arrive."""
    loop = asyncio.get_running_loop()
    # Connected: the kernel reports the peer's ICMP port unreachable as ECONNREFUSED on it.
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    sock.setblocking(False)
    replies: asyncio.Queue[bytes | OSError] = asyncio.Queue()

    def readable() -> None:
        try:
            replies.put_nowait(sock.recv(READ_LIMIT))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            replies.put_nowait(exc)

    loop.add_reader(sock.fileno(), readable)
    last: Verdict | None = None
    sent = False
    try:
        async with asyncio.timeout(check.timeout):
            sock.connect((host, port))
            while not sent:
                try:
                    sock.send(hcmatch.probe_payload(check))
                    sent = True
                except BlockingIOError:
                    # EAGAIN: the neighbour is still being resolved and its queue is full (a
                    # DSR flood toward the same peer, say); not the peer's fault, try again.
                    await asyncio.sleep(0.01)
            while True:
                reply = await replies.get()
                if isinstance(reply, OSError):
                    return _failed("recv()", reply)
                last = hcmatch.stream_reply(check, reply)
                if last.passed or not hcmatch.expects_reply(check):
                    return hcmatch.PASSED
    except TimeoutError:
        if not sent:
            return Verdict(False, f"send() {_TIMED_OUT}: 11: Resource temporarily unavailable")
        if hcmatch.expects_reply(check):
            return last or Verdict(False, f"upstream {_TIMED_OUT}: no reply")
        return hcmatch.PASSED    # silence is health for the basic UDP check
    except OSError as exc:
        return _failed("send()", exc)
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
