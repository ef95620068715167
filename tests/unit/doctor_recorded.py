"""Kernel state recorded in the lab (`nft -j list ruleset` after `sheer net apply`, sysctls, rules and
routes as `sheer.net.inspect` reads them), for the unit tests of `sheer doctor`'s checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from sheer.config import load
from sheer.doctor.needs import Needs, needs
from sheer.doctor.state import Privileges, State
from sheer.lab import configs
from sheer.net.facts import IfAddr, KernelFacts, RouteFact, RuleFact
from sheer.net.plan import Options

DATA = Path(__file__).parent / "data" / "doctor"
BASE_RULES = (RuleFact(0, 255), RuleFact(32766, 254), RuleFact(32767, 253))
SYSCTLS = {"net.ipv4.ip_forward": "0", "net.ipv4.udp_early_demux": "1",
           **{f"net.ipv4.conf.{d}.{leaf}": "0" for d in ("all", "lo", "sheer-pub", "sheer-int")
              for leaf in ("rp_filter", "src_valid_mark", "accept_local")}}

# the lab's proxy, before `sheer net apply`
PROXY = KernelFacts(
    addresses=(IfAddr("lo", "127.0.0.1/8"), IfAddr("sheer-pub", "192.168.99.10/24"),
               IfAddr("sheer-int", "172.16.0.1/24")),
    routes=(RouteFact("192.168.99.0/24", "sheer-pub"), RouteFact("172.16.0.0/24", "sheer-int"),
            RouteFact("127.0.0.0/8", "lo", table=255, kind="local")),
    rules=BASE_RULES,
    sysctls=SYSCTLS,
)
# ... and after it (Method 1): fwmark 1 -> table 100, local 0.0.0.0/0 there
PROXY_APPLIED = replace(PROXY, rules=(*BASE_RULES, RuleFact(32765, 100, fwmark=1)),
                        routes=(*PROXY.routes, RouteFact("0.0.0.0/0", "lo", table=100, kind="local")))
UP1 = KernelFacts(
    addresses=(IfAddr("lo", "127.0.0.1/8"), IfAddr("sheer-int", "172.16.0.11/24")),
    routes=(RouteFact("0.0.0.0/0", "sheer-int", "172.16.0.1"), RouteFact("172.16.0.0/24", "sheer-int")),
    rules=BASE_RULES,
    sysctls={"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.sheer-int.rp_filter": "0"},
)
PROXY_OPTIONS = Options()
ROOT = Privileges(0, 0x1FFFFFFFFFF, 0x1FFFFFFFFFF, None)


def ruleset(name: str) -> tuple[Mapping[str, Any], ...]:
    """One recorded `nft -j list ruleset`: transparent, router, origin, rr, stray."""
    return tuple(json.loads((DATA / f"{name}-nft.json").read_text())["nftables"])


def need(tmp_path: Path, text: str = configs.TRANSPARENT, facts: KernelFacts = PROXY,
         options: Options = PROXY_OPTIONS, client: str | None = None) -> Needs:
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return needs(load(str(path)), options, facts, str(path), client)


def state(facts: KernelFacts = PROXY_APPLIED, rules: str | None = "transparent", **kw: Any) -> State:
    return State(facts, ruleset(rules) if rules else (), **kw)
