"""`sheer lab demo --fleet`: many sheer instances behaving as one. 300 clients (ip:port pairs) ask the
VIP through the edge's ECMP and each proxy takes a share (its kernel's IpForwDatagrams); one proxy's
sheer quits gracefully and the edge forgets its route (`ip route`, `birdc show route`); the clients ask
again and every one is answered by the upstream it had (dnsmasq answers with its own address); the
proxy comes back and is announced again. Written to the report directory as fleet.txt."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sheer.lab import bird, fleet, flows
from sheer.lab.counters import snmp
from sheer.lab.errors import LabError
from sheer.lab.procs import wait_for
from sheer.lab.topology import FLEET_VIP, STATE_DIR, Node, current, proxy_fabric

Echo = Callable[[str], None]
CLIENTS = 300
DEFAULT_SIZE = 3


class _Report:
    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.lines: list[str] = []
        self.failures: list[str] = []

    def say(self, line: str = "") -> None:
        self.echo(line)
        self.lines.append(line)

    def check(self, ok: bool, what: str) -> None:
        self.say(f"{'ok' if ok else 'UNEXPECTED'}: {what}")
        if not ok:
            self.failures.append(what)


def _round(proxies: list[Node], client: str, r: _Report) -> dict[int, str | None]:
    before = {p.name: snmp(p.netns)["Ip.ForwDatagrams"] for p in proxies}
    answers = flows.answers(flows.ask(client, CLIENTS))
    shares = {p.name: snmp(p.netns)["Ip.ForwDatagrams"] - before[p.name] for p in proxies}
    r.say(f"  {CLIENTS} clients (192.168.99.1:{flows.FIRST_PORT}-{flows.FIRST_PORT + CLIENTS - 1}) asked "
          f"{FLEET_VIP}; datagrams each proxy forwarded: "
          + ", ".join(f"{name} {n}" for name, n in shares.items()))
    by_upstream = Counter(a or "no answer" for a in answers.values())
    r.say("  answered by: " + ", ".join(f"{a} {n}" for a, n in sorted(by_upstream.items())))
    r.check(all(answers.values()), f"{sum(1 for a in answers.values() if a)} of {CLIENTS} answered")
    return answers


TRANSITION = re.compile(r'peer (\S+) in upstream "([^"]+)" is \w+ \((\w+) -> (\w+)\)')


def _unhealthy(proxy: Node, state_dir: Path) -> set[str]:
    """The peers this proxy's sheer holds down now: the last health transition its error log says."""
    try:
        text = (fleet.state(proxy, state_dir) / "error.log").read_text(errors="replace")
    except OSError:
        return set()
    text = text[max(text.rfind("sheer started"), 0):]          # this instance's lines
    last = {f"{m[2]}/{m[1]}": m[4] for m in TRANSITION.finditer(text)}
    return {peer for peer, state in last.items() if state != "up"}


def _kernel_tables(proxy: Node) -> str:
    """The entries of every map in the proxy's netdev tables (the fast path's Maglev table), as the
    kernel holds them now: an independent view of what the instance steers with."""
    res = subprocess.run(["ip", "netns", "exec", proxy.netns, "nft", "-j", "list", "ruleset", "netdev"],
                         text=True, capture_output=True, check=False)
    try:
        objs = json.loads(res.stdout)["nftables"] if res.returncode == 0 else []
    except (ValueError, KeyError):
        return ""
    maps = {f'{o["map"]["table"]}/{o["map"]["name"]}': o["map"].get("elem", []) for o in objs if "map" in o}
    return json.dumps(maps, sort_keys=True)


def _settle(proxies: list[Node], r: _Report, state_dir: Path, timeout: float = 20.0) -> None:
    """Same table everywhere needs the same health view everywhere: wait until no proxy holds a peer down
    (an instance announces as soon as one server per upstream is usable; the others may follow later)
    and every proxy's kernel holds the same table (the feeder writes it a moment after the log says up)."""
    def same() -> bool:
        if any(_unhealthy(p, state_dir) for p in proxies):
            return False
        tables = {_kernel_tables(p) for p in proxies}
        return len(tables) == 1 and "" not in tables
    try:
        wait_for(same, timeout, "every proxy to see every upstream healthy and hold the same table")
    except LabError:
        down = {p.name: sorted(_unhealthy(p, state_dir)) for p in proxies}
        differ = len({_kernel_tables(p) for p in proxies}) > 1
        r.check(False, f"peers still down: {down}"
                + ("; the proxies' kernel tables differ" if differ else ""))


def _edge(edge: Node, r: _Report, state_dir: Path) -> list[str]:
    hops = bird.nexthops(edge)
    learnt = bird.bird_routes(edge, state_dir=state_dir)
    r.say(f"  edge: {FLEET_VIP}/32 via {', '.join(hops) or 'nobody'} (ip route); BIRD learnt it from "
          f"{', '.join(learnt) or 'nobody'} (birdc show route)")
    return hops


def run(n: int | None, echo: Echo, state_dir: Path = STATE_DIR) -> _Report:
    r = _Report(echo)
    size = n or current(state_dir).fleet or DEFAULT_SIZE
    fleet.up(size, state_dir, progress=lambda line: echo(f"  {line}"))
    topo = current(state_dir)
    proxies = list(topo.fleet_proxies)
    edge, client = topo.node("edge"), topo.node("client").netns
    last = proxies[-1]
    hop = str(proxy_fabric(bird.index(last)))

    r.say(f"\n== {size} sheer instances behind an ECMP router, each announcing {FLEET_VIP} over BGP ==")
    r.say(f"  BGP sessions established at the edge: {', '.join(sorted(bird.established(edge, state_dir)))}")
    r.check(len(_edge(edge, r, state_dir)) == size, f"the edge spreads the VIP over all {size} proxies")
    _settle(proxies, r, state_dir)
    first = _round(proxies, client, r)

    r.say(f"\n== {last.name}: sheer -s quit (withdraws the VIP first, then drains) ==")
    started = time.monotonic()
    # `sheer -s quit` returns at once; the master withdraws, waits announce_withdraw_delay, drains
    stopping = threading.Thread(target=fleet.stop_sheer, args=(last, state_dir))
    stopping.start()
    try:
        wait_for(lambda: hop not in bird.nexthops(edge), 3.0, f"the edge to drop {last.name}")
        r.say(f"  withdrawn from the edge's table {time.monotonic() - started:.2f} s after `sheer -s quit` "
              "was run (its start included)")
    except LabError as exc:
        r.check(False, str(exc))
    finally:
        stopping.join()
    r.say(f"  sheer on {last.name} stopped {time.monotonic() - started:.2f} s after `sheer -s quit`")
    hops = _edge(edge, r, state_dir)
    r.check(hop not in hops and len(hops) == size - 1, f"{last.name} withdrawn, the others still announce")
    second = _round(proxies, client, r)
    same = [p for p in first if first[p] and second.get(p) == first[p]]
    r.check(len(same) == CLIENTS, f"{len(same)} of {CLIENTS} clients answered by the same upstream as before "
            f"(Maglev over the client's ip:port, the same table in every instance)")

    r.say(f"\n== {last.name}: sheer starts again ==")
    fleet.start_sheer(last, state_dir)
    started = time.monotonic()
    try:
        wait_for(lambda: hop in bird.nexthops(edge), 3.0, f"{last.name} to announce the VIP again")
        r.say(f"  announced again {time.monotonic() - started:.2f} s after it listened")
    except LabError as exc:
        r.check(False, str(exc))
    r.check(len(_edge(edge, r, state_dir)) == size, f"the edge spreads the VIP over all {size} proxies again")
    _settle(proxies, r, state_dir)
    third = _round(proxies, client, r)
    r.check(third == first, "every client answered by the upstream it had at first")
    return r


def main(out: Path, n: int | None, echo: Echo) -> int:
    r = run(n, echo)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.txt").write_text("\n".join(["sheer lab demo --fleet", *r.lines, ""]))
    echo(f"\nreport: {out / 'fleet.txt'}")
    return 1 if r.failures else 0
