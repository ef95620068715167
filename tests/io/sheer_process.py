"""A real `sheer` master as a subprocess, plus small loopback upstreams (TCP echo, UDP echo, DNS).

Everything here is stopped by PID: the master with SIGTERM (then SIGKILL), and any of its
workers still alive afterwards. Nothing is matched by name.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rrset

import sheer.config
from sheer.config.names import HostNotFound, Lookup
from sheer.core.fastpath import services as dsr_services
from sheer.runtime.board import checked_groups
from sheer.runtime.peerset import names_of

UPSTREAM_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")


def free_port(hosts: tuple[str, ...] = ("127.0.0.1",), kinds: tuple[int, ...] = (socket.SOCK_STREAM,
                                                                               socket.SOCK_DGRAM)) -> int:
    """A random high port free for every (host, kind) given."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kinds[0]) as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        if port < 20000:
            continue
        try:
            for host in hosts:
                for kind in kinds:
                    with socket.socket(socket.AF_INET, kind) as other:
                        other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def _bound_ports(udp: bool) -> set[int]:
    ports: set[int] = set()
    for name in (("udp", "udp6") if udp else ("tcp", "tcp6")):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if udp or fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(word) for word in text.split()]


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: with the pid, names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def localhost_only(host: str) -> tuple[str, ...]:
    """The test process's lookup: never a real resolver."""
    if host == "localhost":
        return ("127.0.0.1",)
    raise HostNotFound(host)


def files_only(argv: list[str], directory: Path) -> list[str]:
    """`argv` in a private mount namespace whose nsswitch.conf says `hosts: files`: sheer resolves
    names at load and at reload (as nginx), and whatever name a configuration holds (a mutated one
    too) must never send an io test's question to the host's DNS server. Unchanged where no mount
    namespace can be made (then the test's configuration must hold no name)."""
    if not _can_unshare():
        return argv
    nsswitch = directory / "nsswitch-files-only.conf"
    if not nsswitch.exists():
        lines = [line for line in Path("/etc/nsswitch.conf").read_text().splitlines()
                 if not line.startswith("hosts:")] if Path("/etc/nsswitch.conf").exists() else []
        nsswitch.write_text("\n".join([*lines, "hosts: files"]) + "\n")
    return [*_UNSHARE, "sh", "-c", 'mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@"', "sh",
            str(nsswitch), *argv]


_UNSHARE = ["unshare", "--mount", "--propagation", "private"] if os.geteuid() == 0 else [
    "unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
_unshare_ok: list[bool] = []


def _can_unshare() -> bool:
    if not _unshare_ok:
        probe = subprocess.run([*_UNSHARE, "true"], capture_output=True, check=False)
        _unshare_ok.append(probe.returncode == 0)
    return _unshare_ok[0]


class Sheer:
    """`python -m sheer -c <conf>` with an error log in the test's directory."""

    def __init__(self, tmp: Path, text: str, *, name: str = "sheer.conf", error_log: bool = True,
                 env: dict[str, str] | None = None, lookup: Lookup | None = None,
                 nofile: int | None = None) -> None:
        self.env = None if env is None else {**os.environ, **env}
        self.lookup = lookup or localhost_only   # how this test process resolves the config's names
        self.nofile = nofile            # RLIMIT_NOFILE of the master (and so of its workers)
        self.tmp = tmp
        self.conf = tmp / name
        self.log_path = tmp / "error.log"
        self.stderr_path = tmp / "stderr.txt"
        self.header = f"error_log {self.log_path} info;\n" if error_log else ""
        self.write(text)
        self.proc: subprocess.Popen[bytes] | None = None
        self.workers_seen: set[int] = set()
        self.started: dict[int, str | None] = {}     # pid -> start time, to kill only those very processes

    def write(self, text: str) -> None:
        self.conf.write_text(self.header + text)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sheer", "-c", str(self.conf), *args]

    def command(self, *args: str) -> list[str]:
        return files_only(self.argv(*args), self.tmp)

    def start(self, timeout: float = 20.0) -> Sheer:   # a cold start compiles every module first
        config = sheer.config.load(str(self.conf), lookup=self.lookup)
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=stderr,
                                         stderr=stderr, env=self.env,
                                         preexec_fn=self._limits)  # noqa: PLW1509 -- setrlimit only
        wanted = config.listens

        def ready() -> bool:
            self.check_running()
            tcp, udp = _bound_ports(False), _bound_ports(True)
            return all(os.path.exists(str(listen.sockaddr)) if listen.unix
                       else listen.port in (udp if listen.udp else tcp) for listen in wanted)

        wait_for(ready, timeout, "sheer's listeners")
        # health checks, resolver, the kernel fast path's feeder (DSR servers, checked or not)
        helper = bool(checked_groups(config) or names_of(config) or dsr_services(config))
        self.wait_workers(config.workers + (1 if helper else 0), timeout)
        return self

    def _limits(self) -> None:
        """In the child, before exec: the descriptor limit a test asks for."""
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def check_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError("sheer exited with "
                                 f"{self.proc.returncode}:\n{self.output()}\n{self.error_log()}")

    def workers(self) -> list[int]:
        found = children_of(self.pid)
        self.workers_seen.update(found)
        for pid in found:
            self.started.setdefault(pid, start_time(pid))
        return found

    def wait_workers(self, count: int, timeout: float = 15.0) -> list[int]:
        wait_for(lambda: len(self.workers()) == count, timeout, f"{count} worker(s)")
        return self.workers()

    def signal(self, signum: int) -> None:
        self.workers()
        os.kill(self.pid, signum)

    def wait(self, timeout: float = 5.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def error_log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 5.0) -> None:
        wait_for(lambda: text in self.error_log(), timeout, f"{text!r} in the error log")

    def stop(self) -> None:
        """SIGTERM the master (SIGKILL after 5s), then any worker of it still alive."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.workers()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in self.workers_seen:
            if alive(pid) and self.started.get(pid) is not None and start_time(pid) == self.started[pid]:
                os.kill(pid, signal.SIGKILL)


# --- upstreams ------------------------------------------------------------------------------

class TcpEcho:
    """Echoes every byte back; on the client's EOF, finishes writing and closes."""

    def __init__(self, host: str, port: int = 0, delay: float = 0.0) -> None:
        self.delay = delay        # seconds to wait before echoing each chunk
        self.received: list[bytes] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.peers: list[tuple[str, int]] = []
        self.streams: list[bytearray] = []    # what each connection sent, in the order accepted
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.peers.append(peer)
            self.streams.append(stream := bytearray())
            threading.Thread(target=self._echo, args=(conn, stream), daemon=True).start()

    def _echo(self, conn: socket.socket, stream: bytearray) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    self.received.append(data)
                    stream += data
                    if self.delay:
                        time.sleep(self.delay)
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2)


class UdpServer:
    """Answers each datagram with `answer(data, peer)` (None: stay silent); records who asked."""

    def __init__(self, host: str, port: int,
                 answer: Callable[[bytes, tuple[str, int]], list[bytes] | None]) -> None:
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = int(self.sock.getsockname()[1])
        self.answer = answer
        self.peers: list[tuple[str, int]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            if data == b"\x00stop":
                return
            self.peers.append(peer)
            for reply in self.answer(data, peer) or ():
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        """Stop and release the port: datagrams to it now get ICMP port-unreachable."""
        if self.sock.fileno() < 0:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"\x00stop", (self.host, self.port))
        self.thread.join(2)
        self.sock.close()


def dns_server(host: str, port: int) -> UdpServer:
    """An authoritative-ish server: any A question gets one answer, this server's own address."""
    def answer(data: bytes, _peer: tuple[str, int]) -> list[bytes]:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", host))
        return [response.to_wire()]
    return UdpServer(host, port, answer)


def udp_echo(host: str, port: int = 0) -> UdpServer:
    return UdpServer(host, port, lambda data, _peer: [data])
