"""An upstream's share: its replies' way back (through the proxy, or origin NAT and the return router)."""

from __future__ import annotations

from sheer.doctor.checks.nat import rewrites, tc_rewrites
from sheer.doctor.findings import Finding, unknown_sysctl, unread
from sheer.doctor.needs import Needs
from sheer.doctor.state import NextHop, State


def return_route(n: Needs, s: State) -> list[Finding]:
    if n.role != "upstream":
        return []
    name = "route back to clients"
    out: list[Finding] = []
    origin = n.options.dsr == "origin"
    for rg in s.routes_back:
        what = f"replies from {rg.src} {rg.proto} sport {rg.sport} to {rg.dst}"
        dsr = origin and rg.proto == "udp" and any(svc.dsr for svc in n.dsr)
        want = n.options.via if dsr else n.options.gateway
        fix_gw = want or "PROXY_INTERNAL_ADDRESS"
        if rg.error:
            out.append(Finding(name, "problem", f"{what}: no route", (rg.error,),
                               (n.net_apply(f"--gateway {fix_gw}" if not dsr else ""),)))
        elif rg.gateway is None:
            out.append(Finding(name, "problem", f"{what} leave directly on {rg.dev}: the clients' subnet is "
                               "directly connected here (the article's \"No Overlapping IP Ranges\")",
                               (f"ip route get {rg.dst} from {rg.src}: dev {rg.dev}",),
                               ("# move the upstream off the clients' subnet; then " + n.net_apply(),)))
        elif want and rg.gateway != want:
            role = "the return router" if dsr else "the proxy"
            out.append(Finding(name, "problem", f"{what} go via {rg.gateway}, not {role} {want}",
                               (f"via {rg.gateway} dev {rg.dev}",),
                               (n.net_apply(f"--via {want}" if dsr else f"--gateway {want}"),)))
        else:
            note = "" if want else " (pass --gateway/--via to check it is the right router)"
            out.append(Finding(name, "ok", f"{what} go via {rg.gateway}{note}", (f"dev {rg.dev}",)))
    return out


def origin_nat(n: Needs, s: State) -> list[Finding]:
    if n.role != "upstream" or n.options.dsr != "origin" or not n.options.host:
        return []
    host = n.options.host
    mine = [svc for svc in n.dsr if any(u.host == host for u in svc.upstreams)]
    if not mine:
        return []
    vip = n.options.vip or next((svc.listen.host for svc in mine if not svc.listen.is_wildcard), None)
    out: list[Finding] = unread("origin NAT", s)
    rules = rewrites(s, host, vip, ("output", "postrouting")) if vip else []
    if out:
        out.extend(_origin_rp_filter(s, host))
        out.extend(_next_hop(n, s, vip))
        return out
    if rules:
        out.append(Finding("origin NAT", "ok", f"replies from {host} are rewritten to {vip}",
                           tuple(r.text() for r in rules)))
    elif vip and tc_rewrites(s, host, vip):
        out.append(Finding("origin NAT", "ok", f"replies from {host} are rewritten to {vip} (tc nat)"))
    else:
        out.append(Finding("origin NAT", "problem", f"no rewrite of this upstream's replies to {vip or '?'}: "
                           "clients get answers from the upstream's own address and drop them",
                           ("nft ruleset and tc egress filters: no such rewrite",),
                           (n.net_apply(*(["--vip", vip] if vip and not n.options.vip else [])),)))
    out.extend(_origin_rp_filter(s, host))
    out.extend(_next_hop(n, s, vip))
    return out


def _origin_rp_filter(s: State, host: str) -> list[Finding]:
    if ":" in host:
        return []       # IPv6 has no rp_filter (an nft `fib` rule is its equivalent: net plan names them)
    dev = s.facts.dev_of(host)
    if s.sysctl("net.ipv4.conf.all.rp_filter") is None:
        return [unknown_sysctl("rp_filter", "net.ipv4.conf.all.rp_filter")]
    all_, mine_rp = s.conf(dev, "rp_filter")
    rp = max(all_, mine_rp or 0)
    if rp == 1:
        return [Finding("rp_filter", "warning", f"strict reverse-path filtering on {dev}: requests whose "
                        "client address routes out another way are dropped", (f"rp_filter {rp}",),
                        (f"sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{dev}.rp_filter=2",))]
    return [Finding("rp_filter", "ok", f"rp_filter {rp} on {dev}", ())]


def _next_hop(n: Needs, s: State, vip: str | None) -> list[Finding]:
    name = "return router"
    hop = s.next_hop
    gateway = next((rg.gateway for rg in s.routes_back if rg.proto == "udp" and rg.gateway), None)
    if hop is None:
        if gateway is None:
            return []
        return [Finding(name, "warning", f"replies leave via {gateway}, which sheer cannot inspect from "
                        f"here: it must forward them and accept the source {vip} arriving from the inside",
                        (),
                        (f"# on {gateway}: sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=2",))]
    where = f"{hop.address} (network namespace {hop.netns})"
    run = f"ip netns exec {hop.netns} sysctl -w"
    if not hop.sysctls:
        return [Finding(name, "warning", f"not checked: the sysctls of {where} could not be read", (),
                        ((f"ip netns exec {hop.netns} sysctl net.ipv4.ip_forward "
                         "net.ipv4.conf.all.rp_filter"),))]
    out: list[Finding] = []
    six = ":" in (vip or "") or ":" in hop.address
    key = "net.ipv6.conf.all.forwarding" if six else "net.ipv4.ip_forward"
    forward = hop.sysctls.get(key)
    if forward != "1":
        out.append(Finding(name, "problem", f"{where} does not forward",
                           (f"{key} = {forward}",),
                           (f"{run} {key}=1",)))
    if six:
        # IPv6 has no rp_filter: a reverse-path check there is an nft `fib` rule (net plan names them)
        if not out:
            out.append(Finding(name, "ok", f"{where} forwards IPv6 ({key} = 1)", ()))
        out += _neighbour(hop)
        return out
    all_ = int(hop.sysctls.get("net.ipv4.conf.all.rp_filter", "0"))
    dev = int(hop.sysctls.get(f"net.ipv4.conf.{hop.dev}.rp_filter", "0")) if hop.dev else 0
    evidence = ((f"{hop.netns}: net.ipv4.conf.all.rp_filter = {all_}, net.ipv4.conf.{hop.dev}.rp_filter = "
                f"{dev}"),)
    if max(all_, dev) == 1:
        out.append(Finding(name, "problem", f"{where} filters reverse paths strictly on {hop.dev}: replies "
                           f"with the public source {vip} arrive from the inside and are dropped", evidence,
                           (f"{run} net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{hop.dev}.rp_filter=2",)))
    elif not out:
        out.append(Finding(name, "ok", f"{where} forwards and accepts the public source from the inside "
                           f"(rp_filter {max(all_, dev)})", evidence))
    return out + _neighbour(hop)


def _neighbour(hop: NextHop) -> list[Finding]:
    """The next hop's entry in this host's neighbour table (ARP, or neighbour discovery for IPv6): an
    entry that failed means it never answered, whatever its sysctls say."""
    what = "neighbour solicitation" if ":" in hop.address else "ARP"
    ip = "ip -6" if ":" in hop.address else "ip"
    if hop.neighbour in ("FAILED", "INCOMPLETE"):
        return [Finding("return router", "problem",
                        f"the return router {hop.address} does not answer {what}: replies cannot be "
                        "handed to it",
                        (f"{ip} neigh show {hop.address}: {hop.neighbour}",),
                        (f"{ip} neigh show {hop.address}", f"ping -c1 {hop.address}"))]
    return []
