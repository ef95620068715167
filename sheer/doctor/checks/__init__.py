"""The checks of `sheer doctor`: each a pure function (Needs, State) -> findings, [] when the
configuration does not need it, over state gathered beforehand (sheer.doctor.gather). Order is the
article's troubleshooting list."""

from __future__ import annotations

from collections.abc import Callable

from sheer.doctor.checks.announce import announce
from sheer.doctor.checks.fastpath import fastpath
from sheer.doctor.checks.host import overlap, privileges, reachability
from sheer.doctor.checks.icmpv6 import icmpv6
from sheer.doctor.checks.marking import policy_routing, reverse_path
from sheer.doctor.checks.nat import router_nat, stray_nat
from sheer.doctor.checks.upstreams import origin_nat, return_route
from sheer.doctor.findings import Finding, group
from sheer.doctor.needs import Needs
from sheer.doctor.state import State

Check = Callable[[Needs, State], list[Finding]]

CHECKS: tuple[Check, ...] = (privileges, reachability, overlap, reverse_path, policy_routing, router_nat,
                             stray_nat, return_route, origin_nat, icmpv6, fastpath, announce)


def diagnose(n: Needs, state: State) -> list[Finding]:
    """Every check's findings, the symptoms of one cause folded into one."""
    return group([finding for check in CHECKS for finding in check(n, state)])


__all__ = ["CHECKS", "Check", "announce", "diagnose", "fastpath", "icmpv6", "origin_nat", "overlap",
           "policy_routing",
           "privileges", "reachability", "return_route", "reverse_path", "router_nat", "stray_nat"]
