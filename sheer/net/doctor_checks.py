"""The checks of `sheer doctor`: each a pure function (Needs, State) -> findings, [] when the
configuration does not need it. Order is the article's troubleshooting list."""

from __future__ import annotations

from collections.abc import Callable

from sheer.net.doctor import Cause, Finding, Needs
from sheer.net.doctor_state import CAP_NET_ADMIN, CAP_NET_RAW, NftRuleView, State, nft_rules, value_contains
from sheer.net.items import NftTable, Rule, TcNat
from sheer.net.plan import is_ipv4, upstream_problems

Check = Callable[[Needs, State], list[Finding]]


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


def _upstream_devs(n: Needs, s: State) -> list[str]:
    devs = [r.dev for h in n.upstream_hosts if is_ipv4(h) for r in [s.facts.route_to(h)] if r and r.dev]
    return list(dict.fromkeys(devs))


def reverse_path(n: Needs, s: State) -> list[Finding]:
    """Method 1 on the proxy: rp_filter 1 or 2 is harmless; src_valid_mark=1 makes the reverse-path
    lookup of a marked reply hit the local table, so its source looks local: a martian unless
    accept_local=1."""
    if n.role != "proxy" or not n.transparent:
        return []
    name = "rp_filter/src_valid_mark/accept_local"
    if s.sysctl("net.ipv4.conf.all.rp_filter") is None:
        return [_unknown_sysctl(name, "net.ipv4.conf.all.rp_filter")]
    out: list[Finding] = []
    for dev in _upstream_devs(n, s):
        rp = max(v for v in s.conf(dev, "rp_filter") if v is not None)
        svm = any(s.conf(dev, "src_valid_mark"))
        accept = any(s.conf(dev, "accept_local"))
        evidence = ((f"{dev}: rp_filter {rp} (max of all/{dev}), src_valid_mark {int(svm)}, accept_local "
                    f"{int(accept)}"),)
        if svm and not accept:
            out.append(Finding(name, "problem", f"src_valid_mark=1 without accept_local=1 on {dev} breaks "
                               "Method 1: marked replies from the upstreams fail the reverse-path check "
                               "(their source routes to the local table) and are dropped", evidence,
                               (f"sysctl -w net.ipv4.conf.{dev}.accept_local=1",
                                ("# or: sysctl -w net.ipv4.conf.all.src_valid_mark=0 "
                                 f"net.ipv4.conf.{dev}.src_valid_mark=0"))))
        else:
            out.append(Finding(name, "ok", f"{dev}: replies pass the reverse-path check "
                               f"(rp_filter {rp} is harmless for Method 1)", evidence))
    return out


def _unread(name: str, s: State) -> list[Finding]:
    """A check that needs the nft ruleset says it could not be made, never "ok" or a guessed problem."""
    if s.nft_error is None:
        return []
    return [Finding(name, "warning", "not checked: the nft ruleset could not be read", (s.nft_error,),
                    ("nft -j list ruleset   # run as root; nftables must be installed",),
                    Cause("nft unreadable", "the nft ruleset could not be read: the checks that need it were "
                          "not made", ("nft -j list ruleset   # run as root; nftables must be installed",)))]


def _unknown_sysctl(name: str, key: str) -> Finding:
    return Finding(name, "warning", f"not checked: {key} could not be read",
                   (f"/proc/sys/{key.replace('.', '/')}",),
                   (f"sysctl {key}",))


def _marking(s: State) -> list[NftRuleView]:
    return [r for r in nft_rules(s.ruleset) if r.hook == "prerouting" and r.mark_set() is not None]


def policy_routing(n: Needs, s: State) -> list[Finding]:
    if n.role != "proxy" or not n.transparent:
        return []
    name = "policy routing"
    if unread := _unread(name, s):
        return unread
    marking = _marking(s)
    if not marking:
        article = [c for i in n.plan.items if isinstance(i, NftTable) for c in i.commands() if "MARK" in c]
        unmarked = Cause("no mark rule", "no rule marks the upstreams' replies: they are routed, not "
                         "delivered to the transparent sockets (connections hang in SYN-SENT)",
                         (n.net_apply(),))
        return [Finding(name, "problem", unmarked.summary,
                        ("nft ruleset: no prerouting rule sets a mark",
                         *(f"the article's form: {a}" for a in article)),
                        unmarked.fix, unmarked), *_mark_counters(n, s, [], unmarked)]
    out: list[Finding] = []
    planned = next((i for i in n.plan.items if isinstance(i, Rule) and i.fwmark is not None), None)
    for mark in sorted({m for r in marking if (m := r.mark_set()) is not None}):
        evidence = [r.text() for r in marking if r.mark_set() == mark]
        rules = [r for r in s.facts.rules if r.fwmark == mark]
        if not rules:
            # the table already holding `local 0.0.0.0/0` (the rule alone was lost), else the plan's
            tables = sorted(r.table for r in s.facts.routes if r.kind == "local" and r.dst == "0.0.0.0/0")
            table = tables[0] if tables else (n.plan.table if n.plan.mark == mark and n.plan.table else 100)
            prio = planned.priority if planned else 32765
            out.append(Finding(name, "problem", f"fwmark {mark:#x} is set but no `ip rule` sends it to a "
                               "table: marked replies are routed, not delivered locally", tuple(evidence),
                               (f"ip rule add fwmark {mark} lookup {table} priority {prio}",)))
            continue
        for rule in rules:
            evidence.append(f"ip rule: {rule.priority}: from all fwmark {mark:#x} lookup {rule.table}")
            local = any(r.table == rule.table and r.kind == "local" and r.dst == "0.0.0.0/0"
                        for r in s.facts.routes)
            if not local:
                out.append(Finding(name, "problem", f"table {rule.table} has no `local 0.0.0.0/0` route: "
                                   "marked replies are not delivered to the transparent sockets",
                                   tuple(evidence),
                                   (f"ip route add local 0.0.0.0/0 dev lo table {rule.table}",)))
            else:
                out.append(Finding(name, "ok",
                                   f"fwmark {mark:#x} -> table {rule.table} (local 0.0.0.0/0 dev lo)",
                                   tuple(evidence)))
    out.extend(_mark_counters(n, s, marking))
    return out


def _mark_counters(n: Needs, s: State, marking: list[NftRuleView],
                   unmarked: Cause | None = None) -> list[Finding]:
    tp = s.transparent_probe
    if tp is None:
        return []
    name = "mark counters"
    ids = [r.id for r in marking]
    moved = sum(max(0, tp.after.get(i, 0) - tp.before.get(i, 0)) for i in ids if i in tp.before)
    evidence = (f"transparent probe {tp.src} -> {tp.dst}:{tp.port}: {tp.detail}",
                f"mark rule counters moved by {moved} packet(s)")
    if tp.connected and moved > 0:
        return [Finding(name, "ok", "a transparent connection was answered and its replies were marked",
                        evidence)]
    if tp.connected:
        return [Finding(name, "warning", "a transparent connection was answered but no mark rule counted it "
                        "(a rule without `counter`?)", evidence)]
    why = ("the replies were marked but not delivered: see the policy routing findings" if moved
           else "its replies never reached the mark rule: is the upstream's route back through this proxy?")
    unroutable = no_route(n, s)
    cause = unroutable if unroutable and s.facts.route_to(tp.dst) is None else unmarked
    return [Finding(name, "problem", f"a transparent connection from {tp.src} to {tp.dst}:{tp.port} got no "
                    f"answer; {why}", evidence,
                    (n.net_apply(),
                     f"# on {tp.dst}: sheer net apply -c {n.conf} --role upstream --host {tp.dst}"),
                    cause)]


def _vip(n: Needs, s: State) -> str | None:
    if n.options.vip:
        return n.options.vip
    for svc in n.dsr:
        if not svc.listen.is_wildcard:
            return svc.listen.host
    addrs = [a for a in s.facts.addresses if a.dev == n.public_if]
    return str(addrs[0].interface.ip) if addrs else None


def _rewrites(s: State, host: str, vip: str, hooks: tuple[str, ...]) -> list[NftRuleView]:
    found = []
    for r in nft_rules(s.ruleset):
        if r.saddr_set() != vip or (r.hook not in hooks and r.family != "netdev"):
            continue
        scopes = [value_contains(right, host) for what, op, right in r.matches()
                  if what == "ip saddr" and op == "=="]
        if all(x is not False for x in scopes):
            found.append(r)
    return found


def _tc_rewrites(s: State, host: str, vip: str) -> bool:
    import json
    return any('"nat"' in (t := json.dumps(f)) and host in t and vip in t
               for filters in s.tc_egress.values() for f in filters)


def router_nat(n: Needs, s: State) -> list[Finding]:
    if n.role != "proxy" or n.dsr_mode != "router":
        return []
    out: list[Finding] = []
    forward = s.sysctl("net.ipv4.ip_forward")
    if forward is None:
        out.append(_unknown_sysctl("ip_forward", "net.ipv4.ip_forward"))
    elif forward != "1":
        out.append(Finding("ip_forward", "problem", "router NAT forwards the upstreams' replies, but "
                           "forwarding is off: they are dropped here", (f"net.ipv4.ip_forward = {forward}",),
                           ("sysctl -w net.ipv4.ip_forward=1",)))
    else:
        out.append(Finding("ip_forward", "ok", "forwarding is on (router NAT)", ("net.ipv4.ip_forward = 1",)))
    vip = _vip(n, s)
    hosts = [u for svc in n.dsr for u in svc.upstreams if is_ipv4(u.host)]
    out.extend(_unread("stateless NAT", s))
    for u in hosts if s.nft_error is None else ():
        rules = _rewrites(s, u.host, vip, ("postrouting", "output")) if vip else []
        if rules:
            out.append(Finding("stateless NAT", "ok", f"replies from {u.name} are rewritten to {vip}",
                               tuple(r.text() for r in rules)))
        elif vip and _tc_rewrites(s, u.host, vip):
            out.append(Finding("stateless NAT", "ok",
                               f"replies from {u.name} are rewritten to {vip} (tc nat)"))
        else:
            article = [c for i in n.plan.items if isinstance(i, (TcNat, NftTable)) for c in i.commands()
                       if f"src {u.host}/32" in c]
            out.append(Finding("stateless NAT", "problem", f"no stateless rewrite of replies from {u.name} "
                               f"to {vip or '(unknown VIP: pass --vip)'}: clients get answers from the "
                               "upstream's address and drop them",
                               ("nft ruleset and tc egress filters: no such rewrite",),
                               (n.net_apply(), *article)))
    demux = s.sysctl("net.ipv4.udp_early_demux")
    if demux is None:
        out.append(_unknown_sysctl("udp early demux", "net.ipv4.udp_early_demux"))
    elif demux == "1":
        out.append(Finding("udp early demux", "warning", "udp_early_demux=1: a sender that keeps a connected "
                           "UDP socket bound to the client's ip:port (nginx does, per datagram) gets the "
                           "forwarded reply attached to it and ip_forward() drops it (~10% loss, collapse "
                           "under load); sheer's raw DSR sender keeps no such socket and is immune",
                           ("net.ipv4.udp_early_demux = 1",), ("sysctl -w net.ipv4.udp_early_demux=0",)))
    else:
        out.append(Finding("udp early demux", "ok", "udp_early_demux is off: forwarded replies cannot be "
                           "attached to a sender's socket", (f"net.ipv4.udp_early_demux = {demux}",)))
    out.append(Finding("act_nat", "ok", "tc act_nat is available: the article's `tc ... action nat` works"
                       if s.facts.act_nat else "tc act_nat is missing on this kernel: the article's `tc ... "
                       "action nat` fails; sheer net rewrites with nftables instead"))
    return out


def _catches(n: Needs, s: State, r: NftRuleView, dev: str | None, host: str) -> bool | None:
    """Whether a source-NAT rule matches a packet from a transparent socket to `host` via `dev`."""
    verdict: bool | None = True
    for what, op, right in r.matches():
        if what == "oifname":
            hit = value_contains(right, dev) if dev else None
        elif what == "iifname":
            hit = False                        # locally generated: no input interface
        elif what == "ip daddr":
            hit = value_contains(right, host)
        elif what == "ip saddr":
            hit = value_contains(right, n.client) if n.client else (True if op == "!=" else None)
            if hit is not None and not n.client:
                op = "=="
        else:
            hit = None
        if hit is not None and op == "!=":
            hit = not hit
        if hit is False:
            return False
        if hit is None:
            verdict = None
    return verdict


def stray_nat(n: Needs, s: State) -> list[Finding]:
    if n.role != "proxy" or not (n.transparent or n.dsr):
        return []
    name = "stray rules"
    out: list[Finding] = _unread(name, s)
    snat = [r for r in nft_rules(s.ruleset) if r.source_nat() and r.hook in ("postrouting", "output")]
    targets = [(r.dev if r else None, h) for h in n.upstream_hosts if is_ipv4(h)
               for r in [s.facts.route_to(h)]]
    for r in snat:
        verdicts = [_catches(n, s, r, dev, host) for dev, host in targets]
        fix = (f"nft delete rule {r.family} {r.table} {r.chain} handle {r.handle}",
               "# or narrow it so it leaves the upstream-bound traffic alone (e.g. `oifname != DEV`)")
        if any(v is True for v in verdicts):
            out.append(Finding(name, "problem", f"a {r.source_nat()} rule rewrites the source of "
                               "upstream-bound traffic: the upstreams see this proxy, not the client",
                               (r.text(),), fix))
        elif any(v is None for v in verdicts):
            out.append(Finding(name, "warning", f"a {r.source_nat()} rule may catch upstream-bound traffic",
                               (r.text(),), fix))
    if "nat" in s.legacy_tables:
        out.append(Finding(name, "warning", "the legacy iptables nat table is loaded: sheer reads only "
                           "nftables (iptables-nft included)", ("/proc/net/ip_tables_names: nat",),
                           (("iptables-legacy -t nat -S POSTROUTING   # look for MASQUERADE/SNAT towards the "
                            "upstreams"),)))
    if not out and s.nft_error is None:
        out.append(Finding(name, "ok", "no masquerade or SNAT catches the upstream-bound traffic",
                           (f"{len(snat)} source-NAT rule(s) in the nft ruleset",)))
    return out


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
    out: list[Finding] = _unread("origin NAT", s)
    rules = _rewrites(s, host, vip, ("output", "postrouting")) if vip else []
    if out:
        out.extend(_origin_rp_filter(s, host))
        out.extend(_next_hop(n, s, vip))
        return out
    if rules:
        out.append(Finding("origin NAT", "ok", f"replies from {host} are rewritten to {vip}",
                           tuple(r.text() for r in rules)))
    elif vip and _tc_rewrites(s, host, vip):
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
    dev = s.facts.dev_of(host)
    if s.sysctl("net.ipv4.conf.all.rp_filter") is None:
        return [_unknown_sysctl("rp_filter", "net.ipv4.conf.all.rp_filter")]
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
    forward = hop.sysctls.get("net.ipv4.ip_forward")
    if forward != "1":
        out.append(Finding(name, "problem", f"{where} does not forward",
                           (f"net.ipv4.ip_forward = {forward}",),
                           (f"{run} net.ipv4.ip_forward=1",)))
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
    return out


CHECKS: tuple[Check, ...] = (privileges, reachability, overlap, reverse_path, policy_routing, router_nat,
                             stray_nat, return_route, origin_nat)
