"""Derive the kernel plumbing a configuration needs: pure, no I/O (facts come in as data).

Proxy role, Method 1 (IP Transparency): replies from the upstreams to a client address must be
delivered to the local transparent socket bound to that address. Mark them, send the mark to a
table where every address is local (`ip rule fwmark M lookup T`, `ip route add local 0.0.0.0/0
dev lo table T`). Marking uses nft `socket transparent 1`: it marks exactly the packets that
belong to a local transparent socket, so it needs no port list, covers TCP and UDP (proxy_responses
>= 1) alike and never captures traffic of anything else on the box; it is scoped to the
upstreams' addresses as well. `--match ports` gives the article's per-protocol port rules instead.

DSR (UDP, proxy_responses 0, proxy_bind $remote_addr:$remote_port transparent): router NAT
forwards the replies and rewrites their source statelessly on the client-facing interface; origin
NAT has each upstream rewrite its own replies on output.
"""

from __future__ import annotations

from dataclasses import replace

from sheer.config.model import Config
from sheer.net.facts import KernelFacts
from sheer.net.plan.announce_role import plan_announce
from sheer.net.plan.builder import (
    DEFAULT_MARK,
    DEFAULT_TABLE,
    NFT_TABLE,
    Builder,
    Dsr,
    Match,
    Nat,
    Options,
    Plan,
    Proto,
    Role,
    Service,
    in_network,
    is_ip,
    is_ipv4,
    name_notes,
    nft_set,
    services,
    upstream_problems,
    variable_targets,
)
from sheer.net.plan.proxy_role import client_facing, plan_proxy
from sheer.net.plan.upstream_role import plan_upstream

NO_FACTS = KernelFacts()
PROXY = Options()                 # the default: the proxy's share, router NAT for DSR


def plan(config: Config, options: Options = PROXY, kernel: KernelFacts = NO_FACTS) -> Plan:
    """The kernel state `config` needs for `options.role`, clear of what `kernel` already has."""
    found = services(config)
    if options.vip is None and len(config.announce.vips) == 1:
        # the announced VIP is the public address of the fast path and of DSR's replies
        options = replace(options, vip=config.announce.vips[0].address)
    b = Builder(options, kernel)
    b.notes += name_notes(found, config)
    if options.mark is not None and options.mark in kernel.fwmarks:
        b.problems.append(f"fwmark {options.mark} is already used by an existing `ip rule`: pick another "
                          "--mark")
    if options.table is not None and options.table in kernel.tables:
        b.problems.append(f"table {options.table} is already in use (rules or routes): pick another --table")
    if options.role == "proxy" and config.announce:
        plan_announce(b, config)
    if not found:
        if not b.items:
            b.notes.append("nothing to do: no `proxy_bind $remote_addr... transparent` with upstreams in the "
                           "config")
        return b.plan()
    if options.role == "upstream":
        return plan_upstream(b, found)
    return plan_proxy(b, found)


__all__ = ["DEFAULT_MARK", "DEFAULT_TABLE", "NFT_TABLE", "NO_FACTS", "PROXY", "Builder", "Dsr", "Match",
           "Nat", "Options", "Plan", "Proto", "Role", "Service", "client_facing", "in_network", "is_ip",
           "is_ipv4", "name_notes", "nft_set", "plan", "services", "upstream_problems", "variable_targets"]
