"""`sheer lab demo`: the article from start to end, with what the upstreams saw and which way the
replies went (kernel counters), a terminal diagram per method, and a report + SVG on disk."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from sheer.lab import build, configs, counters, diagram, plumbing, running_proxy, witness
from sheer.lab.dualstack import VIP6
from sheer.lab.errors import LabError
from sheer.lab.procs import netns_exec, wait_for
from sheer.lab.topology import STATE_DIR, VIP, article

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    method: str  # plain, transparency, dsr-router, dsr-origin
    title: str
    config: str
    expect_src: str  # what the upstreams should see as the client
    http: bool
    ipv6: bool = False  # over the dual-stack lab's IPv6 (`sheer lab demo --ipv6`)

    @property
    def name(self) -> str:
        return self.method + ("-ipv6" if self.ipv6 else "")

    @property
    def vip(self) -> str:
        return str(VIP6) if self.ipv6 else str(VIP)


STEPS = (
    Step("plain", "Plain reverse proxy", configs.PLAIN, "172.16.0.1", True),
    Step("transparency", "Method 1: IP Transparency", configs.TRANSPARENT, "192.168.99.1", True),
    Step("dsr-router", "Method 2a: DSR, router NAT", configs.DSR, "192.168.99.1", False),
    Step("dsr-origin", "Method 2b: DSR, origin NAT", configs.DSR, "192.168.99.1", False),
)
# the same over IPv6 (the dual-stack lab). Origin NAT over IPv6 is tested in tests/lab/test_ipv6.py;
# the demo's plumbing helper (sheer.lab.plumbing) passes the upstreams IPv4's VIP and return router
STEPS6 = (
    Step("transparency", "Method 1 over IPv6: IP Transparency", configs.TRANSPARENT6, "fd00:99::1", True,
         True),
    Step("dsr-router", "Method 2a over IPv6: DSR, router NAT", configs.DSR6, "fd00:99::1", False, True),
)
# /proc/net/snmp's names and /proc/net/snmp6's
COUNTERS = {False: ("Udp.InDatagrams", "Udp.OutDatagrams", "Ip.ForwDatagrams"),
            True: ("Udp6InDatagrams", "Udp6OutDatagrams", "Ip6OutForwDatagrams")}


@dataclass
class Outcome:
    step: Step
    verdict: str = "ok"  # ok, unexpected, not built yet
    reason: str = ""
    lines: list[str] = field(default_factory=list)


def _observe(step: Step, kind: running_proxy.Kind) -> Outcome:
    topo = article()
    out = Outcome(step)
    marks = {n.name: witness.log_offsets(n) for n in topo.upstreams}
    nodes = ("client", "proxy", "rr")
    before = {n: counters.snmp(topo.node(n).netns) for n in nodes}
    client = topo.node("client").netns
    vip = step.vip
    url = f"http://[{vip}]/" if step.ipv6 else f"http://{vip}/"
    if step.http:
        for _ in range(4):
            body = netns_exec(client, "curl", "-s", "-m", "2", url, check=False).stdout.strip()
            out.lines.append(f"client$ curl {url}  ->  {body or '(no answer)'}")
    answers = []
    for _ in range(4):
        res = netns_exec(client, "dig", "+short", "+time=1", "+tries=1", f"@{vip}", "www.example.com",
                         check=False)
        last = res.stdout.strip().splitlines()[-1:] or [""]
        answers.append(last[0] if _is_ipv4(last[0]) else "(no answer)")
    out.lines.append(f"client$ dig @{vip} www.example.com  x4  ->  {', '.join(answers)}")
    after = {n: counters.snmp(topo.node(n).netns) for n in nodes}
    wanted = 4 * step.http + sum(a != "(no answer)" for a in answers)

    def collected() -> list[witness.Seen]:
        return [s for n in topo.upstreams for s in witness.parse_seen(n, marks[n.name])]

    try:  # dnsmasq writes its log from its main loop: give it a moment
        wait_for(lambda: len(collected()) >= wanted, 1.0, "the witnesses' logs")
    except LabError:
        pass
    seen = collected()
    for up in topo.upstreams:
        mine = [f"{s.protocol} from {s.src}:{s.sport}" for s in seen if s.node == up.name]
        out.lines.append(f"{up.name} ({up.address()}) saw: {', '.join(mine) or 'nothing'}")
    rx, tx, fwd = COUNTERS[step.ipv6]
    d = {n: counters.delta(before[n], after[n], COUNTERS[step.ipv6]) for n in nodes}
    out.lines.append(
        f"proxy: received {d['proxy'][rx]} UDP datagrams, sent {d['proxy'][tx]}, forwarded "
        f"{d['proxy'][fwd]} packets; return router forwarded {d['rr'][fwd]}; client received "
        f"{d['client'][rx]} UDP datagrams"
    )
    sources = Counter(s.src for s in seen)
    got_answers = sum(a != "(no answer)" for a in answers)
    if set(sources) != {step.expect_src} or got_answers < 4:
        out.verdict = "unexpected"
        out.reason = (f"expected upstreams to see {step.expect_src} and 4 answers; "
                      f"saw {dict(sources)}, {got_answers} answers")
    return out


def _is_ipv4(text: str) -> bool:
    try:
        IPv4Address(text)
    except ValueError:
        return False
    return True


def run_step(step: Step, kind: running_proxy.Kind, state_dir: Path = STATE_DIR) -> Outcome:
    if step.ipv6 and kind == "nginx":
        return Outcome(step, "not built yet", "the reference plumbing is the article's, IPv4 only (nginx "
                       "over IPv6 runs on sheer's plumbing in tests/lab/test_ipv6.py and the benchmark)")
    try:
        running_proxy.check(kind, step.config, state_dir)
    except running_proxy.ProxyUnavailable as exc:
        return Outcome(step, "not built yet", str(exc))
    conf = state_dir / "demo" / f"{step.name}.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(step.config)
    try:
        try:
            if kind == "nginx":
                plumbing.reference_apply(step.method)
            else:
                plumbing.sheer_apply(step.method, conf)
        except LabError as exc:
            return Outcome(step, "not built yet", str(exc))
        with running_proxy.running(kind, step.config, state_dir) as running:
            outcome = _observe(step, kind)
            if outcome.verdict != "ok":
                lines = [ln for ln in running.log().splitlines() if ln.strip()]
                why = next((ln for ln in lines if "failed" in ln or "rror" in ln), "")
                outcome.reason += f"; {kind} logged: {why}" if why else ""
            return outcome
    except LabError as exc:
        return Outcome(step, "unexpected", str(exc))
    finally:
        if kind == "nginx":
            plumbing.reference_revert()
        else:
            plumbing.sheer_revert(step.method, conf)


def main(out: Path, proxy: running_proxy.Kind, echo: Echo, ipv6: bool = False) -> int:
    build.up(progress=lambda line: echo(f"  {line}"), ipv6=ipv6)
    out.mkdir(parents=True, exist_ok=True)
    report: list[str] = [f"sheer lab demo: the article end to end, proxy = {proxy}", ""]
    outcomes = []
    steps = STEPS + (STEPS6 if ipv6 else ())
    for step in steps:
        echo(f"\n== {step.title} ==")
        outcome = run_step(step, proxy)
        outcomes.append(outcome)
        text = [*diagram.terminal(step.method), *outcome.lines]
        text.append(f"result: {outcome.verdict}{': ' + outcome.reason if outcome.reason else ''}")
        for line in text:
            echo(line)
        report += [f"== {step.title} ==", *text, ""]
        (out / f"{step.name}.svg").write_text(diagram.svg(step.method))
        (out / f"{step.name}.conf").write_text(step.config)
    (out / "report.txt").write_text("\n".join(report))
    echo(f"\nreport: {out / 'report.txt'}; diagrams: "
         f"{', '.join(str(out / (s.name + '.svg')) for s in steps)}")
    return 1 if any(o.verdict == "unexpected" for o in outcomes) else 0
