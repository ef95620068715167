"""What `sheer trace` does: watch one flow hop by hop.

One tcpdump per network namespace (`-i any -y LINUX_SLL2`: every interface, with its index and the
direction) writing pcap, a BPF filter on the config's ports (and the client), bounded by --seconds and
a packet count; every tcpdump is ended by its PID. In the lab every node is watched, elsewhere this
namespace. Then the first flow from a client is followed: client -> proxy -> upstream -> proxy or return
router -> client, and where its replies stopped. IPv4 and IPv6 alike (addresses compared in their
canonical form: the capture writes fd00:16::11 however the configuration spells it). Where to watch (the
lab's nodes, or here) is the caller's choice."""

from __future__ import annotations

import json
import select
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from sheer.config import Config
from sheer.doctor.pcap import Packet, read

MAX_PACKETS = 2000
MAX_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Spot:
    node: str
    netns: str | None               # None: this namespace


@dataclass(frozen=True, slots=True)
class Hop:
    node: str
    dev: str
    packet: Packet

    def to_json(self, t0: float) -> dict[str, Any]:
        p = self.packet
        return {"t_ms": round((p.time - t0) * 1000, 3), "node": self.node, "dev": self.dev,
                "dir": "out" if p.outgoing else "in", "proto": p.proto, "src": p.src, "sport": p.sport,
                "dst": p.dst, "dport": p.dport, "flags": p.flags, "len": p.length}


def ports(config: Config) -> tuple[set[int], set[int], set[str]]:
    """(listen ports, upstream ports, upstream addresses) of the configuration."""
    listen: set[int] = set()
    upstream: set[int] = set()
    hosts: set[str] = set()
    for server in config.stream.servers if config.stream else ():
        listen |= {x.port for x in server.listens}
        for u in server.upstream.servers if server.upstream else ():
            upstream.add(u.port)
            hosts.add(canonical(u.host))
    for http in config.http.servers if config.http else ():
        listen |= {x.port for x in http.listens}
        for loc in http.locations:
            # proxy_pass with variables: its upstreams are known per request only
            for u in loc.proxy_pass.upstream.servers if loc.proxy_pass and loc.proxy_pass.upstream else ():
                upstream.add(u.port)
                hosts.add(canonical(u.host))
    return listen, upstream, hosts


def canonical(address: str) -> str:
    """An address as the capture writes it (IPv6 compressed, no brackets); a name stays as it is."""
    try:
        return str(ip_address(address.strip("[]")))
    except ValueError:
        return address


def bpf(listen: set[int], upstream: set[int], client: str | None) -> str:
    """Both families (`ip6 and tcp` matches a TCP header right after the IPv6 one, as the reader does)."""
    port_list = " or ".join(f"port {p}" for p in sorted(listen | upstream))
    text = f"(ip or ip6) and (tcp or udp) and ({port_list})"
    return f"{text} and host {canonical(client)}" if client else text


def _in(spot: Spot, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", spot.netns, *cmd] if spot.netns else list(cmd)


def interfaces(spot: Spot) -> dict[int, str]:
    res = subprocess.run(_in(spot, "ip", "-j", "link"), capture_output=True, text=True, check=False,
                         timeout=5)
    return {link["ifindex"]: link["ifname"] for link in json.loads(res.stdout or "[]")}


def capture(where: list[Spot], bpf_text: str, seconds: float,
            watching: Callable[[list[Spot], str, float], None] = lambda *_: None) -> list[Hop]:
    """Every packet the filter passes in `where` for `seconds`; `watching` is told once every tcpdump
    listens (before that, a flow would be missed)."""
    seconds = max(0.1, min(seconds, MAX_SECONDS))
    hops: list[Hop] = []
    with tempfile.TemporaryDirectory(prefix="sheer-trace-") as tmp:
        procs: list[tuple[Spot, Path, subprocess.Popen[bytes]]] = []
        try:
            for spot in where:
                path = Path(tmp) / f"{spot.node}.pcap"
                cmd = _in(spot, "tcpdump", "-i", "any", "-y", "LINUX_SLL2", "-U", "-n", "-s", "160",
                          "-c", str(MAX_PACKETS), "-w", str(path), bpf_text)
                procs.append((spot, path, subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                                           stdout=subprocess.DEVNULL,
                                                           stderr=subprocess.PIPE)))
            _wait_listening([p for _, _, p in procs], 5.0)
            watching(where, bpf_text, seconds)
            time.sleep(seconds)
        finally:
            for _, _, proc in procs:
                _stop(proc)
        for spot, path, _ in procs:
            names = interfaces(spot)
            data = path.read_bytes() if path.exists() else b""
            hops.extend(Hop(spot.node, names.get(p.ifindex, str(p.ifindex)), p) for p in read(data))
    return sorted(hops, key=lambda h: h.packet.time)


def _wait_listening(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """tcpdump says "listening on ..." once its socket is open."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = proc.stderr.readline()
            if not line or b"listening on" in line:
                break


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End one tcpdump we started, by its PID (SIGTERM flushes its file; SIGKILL if it lingers)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)
    if proc.stderr:
        proc.stderr.close()


@dataclass(frozen=True, slots=True)
class Flow:
    hops: tuple[Hop, ...]
    client: tuple[str, int]
    front: tuple[str, int]           # the address and port the client sent to
    proto: str
    reached: bool                    # a reply from `front` reached the client (or left towards it)
    reply_path: tuple[str, ...]      # nodes that sent the client's reply on, in order
    stopped_at: Hop | None           # where the last reply was seen, when none reached the client


def follow(hops: list[Hop], listen: set[int], upstream: set[int], hosts: set[str],
           client: str | None) -> Flow | None:
    client = canonical(client) if client else None
    first = next((h for h in hops if h.packet.dport in listen and h.packet.src not in hosts
                  and (client is None or h.packet.src == client)), None)
    if first is None:
        return None
    req = first.packet
    cl, front = (req.src, req.sport), (req.dst, req.dport)
    legs = {frozenset({cl, front})}
    inner = next((h.packet for h in hops if h.packet.time >= req.time and h.packet.dst in hosts
                  and h.packet.dport in upstream and h.packet.proto == req.proto), None)
    if inner is not None:
        legs.add(frozenset({(inner.src, inner.sport), (inner.dst, inner.dport)}))
    mine = tuple(h for h in hops if h.packet.proto == req.proto and h.packet.time >= req.time
                 and frozenset({(h.packet.src, h.packet.sport), (h.packet.dst, h.packet.dport)}) in legs)
    # the answer: from where the client sent to, with payload (a TCP handshake alone is not one)
    answered = [h for h in mine if (h.packet.dst, h.packet.dport) == cl
                and (h.packet.src, h.packet.sport) == front
                and (h.packet.proto == "udp" or h.packet.length > 0)]
    reached = any(h.node == "client" and not h.packet.outgoing for h in answered) or (
        any(h.packet.outgoing for h in answered) and not any(h.node == "client" for h in hops))
    path = tuple(dict.fromkeys(h.node for h in answered if h.packet.outgoing))
    inner_replies = [h for h in mine if inner is not None
                     and (h.packet.src, h.packet.sport) == (inner.dst, inner.dport)]
    toward = inner_replies or [h for h in mine if h.packet.dst == cl[0]]
    stopped = None if reached or not toward else toward[-1]
    return Flow(mine, cl, front, req.proto, reached, path, stopped)
