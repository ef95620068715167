"""`sheer doctor` for announcing VIPs over BGP (sheer.core.announce): BIRD's fragment as the plan
writes it, BIRD answering and having read it, its BGP sessions, and for each VIP whether the running
sheer announces it (its device up) and BIRD exports it to every established session."""

from __future__ import annotations

from sheer.core import announce as core
from sheer.doctor.findings import Finding
from sheer.doctor.needs import Needs
from sheer.doctor.state import BirdState, State
from sheer.net.items import BirdFragment

NAME = "announce"


def announce(n: Needs, s: State) -> list[Finding]:
    fragment = next((i for i in n.plan.items if isinstance(i, BirdFragment)), None)
    bird = s.bird
    if not n.announce or fragment is None or bird is None:
        return []
    out = [_fragment(n, fragment, bird)]
    if bird.protocols is None:
        start = "bird -c /etc/bird/bird.conf   # or: systemctl start bird; and check announce_bird_socket"
        return [*out, Finding(NAME, "problem", f"BIRD does not answer on {bird.socket}: no VIP can be "
                              "announced", (bird.error,), (start,))]
    names = {p.name: p for p in bird.protocols}
    if core.PROTOCOL not in names:
        out.append(Finding(NAME, "problem", f"BIRD has not read sheer's fragment (no protocol "
                           f"{core.PROTOCOL})",
                           (f"birdc -s {bird.socket} show protocols",),
                           (f'# in bird.conf: include "{fragment.path}";  (or a glob matching it)',
                            f"birdc -s {bird.socket} configure")))
    sessions = [p for p in bird.protocols if p.proto == "BGP"]
    if not sessions:
        bgp = (f"# in bird.conf: protocol bgp {{ local ... as ...; neighbor ROUTER as ...; "
               f'ipv4 {{ import none; export where proto = "{core.PROTOCOL}"; }}; }}')
        out.append(Finding(NAME, "problem", "BIRD has no BGP session: no router hears the VIPs",
                           (f"birdc -s {bird.socket} show protocols",), (bgp,)))
    for p in sessions:
        if p.info == "Established":
            out.append(Finding(NAME, "ok", f"BGP session {p.name} is established"))
        else:
            out.append(Finding(NAME, "problem", f"BGP session {p.name} is not established ({p.state}, "
                               f"{p.info or 'no info'}): the router does not hear this instance",
                               (f"birdc -s {bird.socket} show protocols all {p.name}",)))
    up = [p.name for p in sessions if p.info == "Established"]
    for vip in n.announce:
        out.append(_vip(n, bird, vip, up))
    return out


def _fragment(n: Needs, fragment: BirdFragment, bird: BirdState) -> Finding:
    if bird.fragment is None:
        return Finding(NAME, "problem", f"BIRD's fragment {fragment.path} is missing", (), (n.net_apply(),))
    if bird.fragment != fragment.text:
        return Finding(NAME, "warning", f"BIRD's fragment {fragment.path} differs from this configuration's",
                       (), (n.net_apply(),))
    return Finding(NAME, "ok", f"BIRD's fragment {fragment.path} is this configuration's")


def _vip(n: Needs, bird: BirdState, vip: str, sessions: list[str]) -> Finding:
    device = core.device(vip)
    state = bird.devices.get(vip, "missing")
    if state == "missing":
        return Finding(NAME, "warning", f"{vip} is not announced: no running sheer holds its device {device}",
                       (f"ip link show {device}",), (f"sheer -c {n.conf}",))
    if state == "down":
        return Finding(NAME, "warning", f"{vip} is withdrawn: the running sheer cannot serve it now (its "
                       "error log says why: no usable upstream server, stopping, ...)",
                       (f"ip link show {device}",))
    missing = [name for name in sessions if bird.exported.get((vip, name)) is False]
    if missing:
        return Finding(NAME, "problem", f"{vip} is announced by sheer but BIRD does not export it to "
                       f"{', '.join(missing)}: their export filter must accept proto \"{core.PROTOCOL}\"",
                       tuple(f"birdc -s {bird.socket} show route export {m} for {vip}/32" for m in missing),
                       (f'# in each bgp protocol: ipv4 {{ export where proto = "{core.PROTOCOL}"; }};',))
    told = ", ".join(name for name in sessions if bird.exported.get((vip, name)))
    if not told:
        # sheer and BIRD agree, but no session carries the route: the router does not hear it
        return Finding(NAME, "warning", f"{vip} is announced by sheer ({device} up) but no BGP session is "
                       "established to carry it", (f"birdc -s {bird.socket} show protocols",))
    return Finding(NAME, "ok", f"{vip} is announced ({device} up), exported to {told}")
