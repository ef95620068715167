"""Many clients at once for the fleet: the lab's client asks `www.example.com` from many source ports
(each ip:port pair a flow the edge's ECMP places on one proxy) and says which upstream answered each
(dnsmasq answers with its own address), one plain UDP socket per port, no retries: a query not
answered within the timeout is lost. `stream()` keeps asking round after round while something
changes (a proxy withdrawn) and says, for each query, when it was sent and whether it was answered.

The asking runs inside the client's namespace as a small Python program (the lab's python3), so
what it measures is what a client there sees."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sheer.lab.errors import LabError
from sheer.lab.procs import netns_exec
from sheer.lab.topology import CLIENT_ADDR, DNS_NAME, FLEET_VIP

FIRST_PORT = 41000

# The program run in the client's namespace. argv: address vip name first count rounds gap timeout.
# It prints one JSON list: [sent_at (monotonic s), port, round, answer or None] per query.
_CLIENT = r"""
import json, selectors, socket, struct, sys, time
addr, vip, name, first, count, rounds, gap, timeout = sys.argv[1:9]
first, count, rounds, gap, timeout = int(first), int(count), int(rounds), float(gap), float(timeout)
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
sel = selectors.DefaultSelector()
socks = []
for port in range(first, first + count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.connect((vip, 53))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, port)
    socks.append(s)
sent = {}      # (port, query id) -> [sent_at, port, round, answer]
waiting = [0]
def drain(until, last=False):
    while not (last and waiting[0] == 0):
        wait = until - time.monotonic()
        events = sel.select(max(wait, 0))
        for key, _ in events:
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                continue
            qid, ancount = struct.unpack("!H", data[:2])[0], struct.unpack("!H", data[6:8])[0]
            entry = sent.get((key.data, qid))
            if entry is not None and entry[3] is None and ancount and len(data) >= 4:
                entry[3] = socket.inet_ntoa(data[-4:])
                waiting[0] -= 1
        if wait <= 0:
            return
for r in range(rounds):
    for i, s in enumerate(socks):
        qid = (r * count + i) & 0xffff
        query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
        sent[(first + i, qid)] = [time.monotonic(), first + i, r, None]
        waiting[0] += 1
        try:
            s.send(query)
        except OSError:
            pass
        if gap:
            drain(time.monotonic() + gap)
drain(time.monotonic() + timeout, last=True)
print(json.dumps(list(sent.values())))
"""


@dataclass(frozen=True, slots=True)
class Query:
    sent_at: float          # the client's monotonic clock (same host as the caller's)
    port: int
    round: int
    answer: str | None      # the answering upstream's address; None: lost


def ask(netns: str, count: int = 300, first: int = FIRST_PORT, rounds: int = 1, gap: float = 0.0,
        timeout: float = 1.0) -> list[Query]:
    """`count` clients (192.168.99.1:first..first+count-1) each ask once per round, `gap` seconds apart."""
    res = netns_exec(netns, "python3", "-c", _CLIENT, str(CLIENT_ADDR), str(FLEET_VIP), DNS_NAME, str(first),
                     str(count), str(rounds), str(gap), str(timeout), check=False,
                     timeout=timeout + rounds * count * (gap + 0.01) + 30)
    if res.returncode != 0:
        raise LabError(f"the client's queries failed: {res.stderr.strip()[-300:]}")
    return [Query(*row) for row in json.loads(res.stdout)]


def answers(queries: list[Query]) -> dict[int, str | None]:
    """port -> the upstream that answered its (last) query, None if lost."""
    return {q.port: q.answer for q in sorted(queries, key=lambda q: q.round)}
