"""The host's share of the article's list: can the workers be transparent (root, capabilities, `user`),
do the upstreams answer from here, and are the clients and the upstreams on separate networks."""

from __future__ import annotations

from sheer.doctor.findings import Cause, Finding
from sheer.doctor.needs import Needs
from sheer.doctor.state import CAP_NET_ADMIN, CAP_NET_RAW, State
from sheer.net.plan import is_ipv4, upstream_problems


def _caps(mask: int) -> str:
    names = [n for bit, n in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_NET_RAW, "CAP_NET_RAW"))
             if mask >> bit & 1]
    return ", ".join(names) or "neither CAP_NET_RAW nor CAP_NET_ADMIN"


def privileges(n: Needs, s: State) -> list[Finding]:
    p = s.privileges
    if n.role != "proxy" or not n.needs_transparency or p is None:
        return []
    name = "privileges"
    switch = n.user is not None and n.user[0] != "root"
    evidence = [f"euid {p.euid}; effective: {_caps(p.cap_eff)}; bounding set: {_caps(p.cap_bnd)}"]
    if n.user:
        evidence.append(f"config: user {' '.join(x for x in n.user if x)}")
    run = f"sheer -c {n.conf}"
    if p.transparent_error:
        return [Finding(name, "problem", "workers cannot set IP_TRANSPARENT: every transparent upstream bind "
                        "fails (nginx: \"setsockopt(IP_TRANSPARENT) failed\")",
                        (*evidence, p.transparent_error),
                        (f"sudo {run}   # as root, with CAP_NET_RAW and CAP_NET_ADMIN in the bounding set",
                         ("# under systemd: AmbientCapabilities=CAP_NET_RAW (and no CapabilityBoundingSet "
                         "without it)")))]
    if switch and p.euid == 0 and not p.has(CAP_NET_RAW, "bnd"):
        return [Finding(name, "problem", f"workers switch to user {n.user[0] if n.user else ''} and keep "
                        "only CAP_NET_RAW, which the bounding set lacks: their IP_TRANSPARENT binds will "
                        "fail", tuple(evidence),
                        (f"sudo {run}   # without dropping CAP_NET_RAW from the bounding set",
                         "# or remove the `user` directive: workers then stay root"))]
    how = (f"workers run as {n.user[0] if n.user else ''} and keep CAP_NET_RAW" if switch and p.euid == 0
           else "workers keep this process's identity")
    return [Finding(name, "ok", f"IP_TRANSPARENT can be set; {how}", tuple(evidence))]


def no_route(n: Needs, s: State) -> Cause | None:
    """The upstreams this host has no route to at all: every probe of them and the transparent probe
    fail for this one reason, which is one problem with one fix."""
    hosts = [h for h in n.upstream_hosts if is_ipv4(h) and s.facts.route_to(h) is None]
    if not hosts:
        return None
    return Cause("no route to the upstreams", f"no route from here to {', '.join(hosts)}: nothing can reach "
                 "them (every probe fails with it)",
                 (f"ip route get {hosts[0]}   # see what is missing",
                  ("# add a route to the upstreams' network: an address on the interface facing them, "
                   "or `ip route add NET via GATEWAY`")))


def _silent(target: str, what: str) -> Cause:
    return Cause(f"silent {target}", f"{what} {target} answers nothing from here (ICMP and every service "
                 "port fail): it is down, or the way to it is broken",
                 (f"ip route get {target}", f"ip neigh show {target}"))


def reachability(n: Needs, s: State) -> list[Finding]:
    if n.role != "proxy" or not n.upstream_hosts:
        return []
    name = "reachability"
    if not s.probed:
        return [Finding(name, "warning", "not probed: this is the root network namespace and the config "
                        "names non-loopback addresses; probes are sent only with --probe",
                        (), (f"sheer doctor -c {n.conf} --probe",))]
    unroutable = no_route(n, s)
    out: list[Finding] = []
    fine: list[str] = []
    for p in s.probes:
        where = f"{p.target}" + (f":{p.port}" if p.port else "")
        line = f"{p.what} {where} {p.kind}: {p.detail}"
        if p.ok is True:
            fine.append(line)
        elif p.ok is False:
            fix = (f"ip route get {p.target}", f"ip neigh show {p.target}") if p.kind == "icmp" else (
                f"# on {p.target}: is the service listening on {p.port}/{p.kind}? (`ss -lnp`)",)
            same_host = [q for q in s.probes if q.target == p.target]
            silent = len(same_host) > 1 and all(q.ok is False for q in same_host)
            cause = (unroutable if unroutable and s.facts.route_to(p.target) is None
                     else _silent(p.target, p.what) if silent
                     else None)
            out.append(Finding(name, "problem",
                               f"{p.what} {where} does not answer {p.kind.upper()} from here",
                               (line,), fix, cause))
        else:
            out.append(Finding(name, "warning",
                               f"{p.what} {where}: {p.kind.upper()} gave no answer either way",
                               (line,)))
    if fine and not out:
        out.append(Finding(name, "ok", "every upstream answers from here (ICMP and its service port)",
                           tuple(fine)))
    elif fine:
        out.append(Finding(name, "ok", "these answer", tuple(fine)))
    return out


def overlap(n: Needs, s: State) -> list[Finding]:
    if n.role != "proxy" or not (n.transparent or n.dsr):
        return []
    name = "no overlapping ranges"
    found: list[str] = []
    for svc in (*n.transparent, *n.dsr):
        for u in svc.upstreams:
            found.extend(upstream_problems(s.facts, u, n.public_if, f"listen {svc.listen}"))
    if n.client and is_ipv4(n.client):
        route = s.facts.route_to(n.client)
        towards = {r.dev for h in n.upstream_hosts if is_ipv4(h) for r in [s.facts.route_to(h)] if r}
        if route and route.dev in towards and route.via is None:
            found.append(f"client {n.client} is on the upstreams' network ({route.dst} on {route.dev}): the "
                         "upstreams would answer it directly, not through the proxy")
    if n.public_if is None and not found:
        return [Finding(name, "warning", "not checked: which interface faces the clients could not be told "
                        "(a wildcard listen, and no single interface apart from the upstreams' side)",
                        (f"upstreams: {', '.join(n.upstream_hosts)}",),
                        ((f"sheer doctor -c {n.conf} --public-if DEV   "
                         "# DEV: the interface facing the clients"),))]
    nets = ", ".join(str(x) for x in s.facts.networks_of(n.public_if)) if n.public_if else "?"
    evidence = (f"clients' side: {n.public_if or '?'} {nets}", f"upstreams: {', '.join(n.upstream_hosts)}")
    if found:
        isolate = ("# put the upstreams on a network of their own, reachable from the clients only through "
                   "the proxy")
        return [Finding(name, "problem", f, evidence, (isolate,)) for f in dict.fromkeys(found)]
    return [Finding(name, "ok", "no client subnet is directly connected to the upstreams", evidence)]
