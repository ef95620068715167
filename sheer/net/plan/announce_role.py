"""A proxy's share of announcing its VIPs (sheer.core.announce): the VIP on an interface of sheer's own,
so the kernel accepts its traffic, and BIRD's fragment, which BIRD reads on `birdc configure`."""

from __future__ import annotations

from sheer.config.model import Config
from sheer.core import announce
from sheer.net.items import DUMMY, Address, BirdFragment, Item, Link
from sheer.net.plan.builder import Builder


def plan_announce(b: Builder, config: Config) -> None:
    ann = config.announce
    holder = DUMMY if b.kernel.dummy else "lo"
    items: list[Item] = [Link(DUMMY)] if holder == DUMMY else []
    if holder == "lo":
        b.notes.append("this kernel has no dummy interfaces: the VIPs go on lo (revert removes them)")
    for vip in ann.vips:
        dev = b.kernel.dev_of(vip.address)
        if dev is not None and dev != holder:
            b.notes.append(f"{vip.address} is already an address of {dev}: left there")
            continue
        items.append(Address(holder, f"{vip.address}/32"))
    text = announce.fragment(config, f"sheer net apply -c {config.file}")
    items.append(BirdFragment(ann.bird_fragment, text, ann.bird_socket))
    listed = ", ".join(vip.address for vip in ann.vips)
    b.notes.append(f"announce {listed}: BIRD's fragment {ann.bird_fragment} defines `protocol static "
                   f"{announce.PROTOCOL}`; BIRD's configuration must include it (`include "
                   f"\"{ann.bird_fragment}\";`, or a glob that matches it) and export it to the BGP sessions "
                   f"(`export where proto = \"{announce.PROTOCOL}\";`). The running sheer announces each VIP "
                   "while it can serve it (`sheer doctor` checks BIRD's sessions and the route)")
    b.items.extend(items)
