"""`sheer net plan|apply|revert|status -c CONF`: the kernel plumbing a configuration needs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sheer.cli.common import DEFAULT_CONF, load_config, say
from sheer.net import apply as net_apply
from sheer.net import inspect
from sheer.net.facts import KernelFacts
from sheer.net.items import BirdFragment
from sheer.net.plan import Options, Plan, plan
from sheer.net.record import Record, record_path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sheer net", description=(
        "The routing, netfilter and NAT state a configuration needs, in the current network namespace."))
    p.add_argument("verb", choices=("plan", "apply", "revert", "status"))
    p.add_argument("-c", dest="conf", metavar="file", default=DEFAULT_CONF, help="configuration file")
    p.add_argument("--role", choices=("proxy", "upstream"), default="proxy")
    p.add_argument("--host", metavar="ADDR", help="upstream role: this upstream's address in the config")
    p.add_argument("--dsr", choices=("router", "origin"), help="DSR method (default: router)")
    p.add_argument("--mark", type=lambda v: int(v, 0), help="fwmark (default: 1, or the first free one)")
    p.add_argument("--table", type=int, help="routing table (default: 100, or the first free one)")
    p.add_argument("--match", choices=("socket", "ports"), default="socket",
                   help="how replies are marked: `socket transparent` (default) or the article's port rules")
    p.add_argument("--nat", choices=("auto", "tc", "nft"), default="auto",
                   help="router NAT rewrite: tc act_nat where the kernel has it (auto), or nft")
    p.add_argument("--masquerade", action="store_true",
                   help="router NAT: masquerade the upstreams' own egress")
    p.add_argument("--public-if", metavar="DEV", help="the interface facing the clients")
    p.add_argument("--vip", metavar="ADDR", help="the public address DSR replies must come from")
    p.add_argument("--gateway", metavar="ADDR", help="upstream role: the proxy's internal address")
    p.add_argument("--via", metavar="ADDR", help="upstream role, origin NAT: the return router")
    p.add_argument("--internal", metavar="CIDR",
                   help="upstream role, origin NAT: network whose replies are not rewritten")
    p.add_argument("--fastpath", choices=("on", "off"), default="on",
                   help="DSR: steer client datagrams to the upstreams in the kernel "
                        "(nft netdev ingress; default on)")
    p.add_argument("--json", action="store_true", help="plan/status as JSON")
    p.add_argument("--allow-root-netns", action="store_true",
                   help="let apply/revert change the root network namespace (refused by default)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    options = Options(args.role, args.host, args.dsr, args.mark, args.table, args.match, args.nat,
                      args.masquerade, args.public_if, args.vip, args.gateway, args.via, args.internal,
                      args.fastpath == "on")
    path = record_path(options.role, options.host)
    try:
        if args.verb in ("apply", "revert") and inspect.in_root_netns() and not args.allow_root_netns:
            say("[emerg] refusing to change the root network namespace: run inside a namespace "
                "(`ip netns exec NAME sheer net ...`), or pass --allow-root-netns")
            return 1
        if args.verb == "revert":
            return revert(path)
        config = load_config(args.conf)
        if config is None:
            return 1
        record = Record.load(path)
        facts = inspect.gather()
        if record:
            facts = facts.excluding(*record.facts())
        the_plan = plan(config, options, facts)
        if args.verb == "plan":
            print(json.dumps(the_plan.to_json(), indent=1) if args.json else render(the_plan))
            return 0
        if the_plan.problems:
            for problem in the_plan.problems:
                say(f"[emerg] {problem}")
            say(f"nothing applied: the plan has {len(the_plan.problems)} problem(s)")
            return 1
        if args.verb == "apply":
            return do_apply(the_plan, path, options, args.conf, facts)
        return status(the_plan, path, args.json)
    except net_apply.KernelError as exc:
        say(f"[emerg] {exc}")
        return 1


def do_apply(the_plan: Plan, path: Any, options: Options, conf: str, facts: KernelFacts) -> int:
    if options.role == "upstream" and options.host and facts.dev_of(options.host) is None:
        say(f"[emerg] {options.host} is not an address of this network namespace: "
            "`apply --role upstream` runs on that upstream")
        return 1
    meta = {"conf": conf, "role": options.role, "host": options.host, "mark": the_plan.mark,
            "table": the_plan.table}
    for line in net_apply.apply(the_plan, path, meta):
        print(line)
    for note in the_plan.notes:
        print(f"# {note}")
    return 0


def revert(path: Any) -> int:
    report = net_apply.revert(path)
    if report is None:
        print("nothing to revert: sheer net apply has not run in this network namespace (for this role)")
        return 0
    for line in report:
        print(line)
    return 0


def status(the_plan: Plan, path: Any, as_json: bool) -> int:
    results = net_apply.status(the_plan, path)
    drift = [line for ok, line in results if not ok]
    if as_json:
        print(json.dumps({"ok": not drift, "items": [{"ok": ok, "item": line} for ok, line in results]},
                         indent=1))
    else:
        for ok, line in results:
            print(f"{'ok   ' if ok else 'DRIFT'} {line}")
        if not results:
            print("ok    nothing planned")
    return 1 if drift else 0


def render(the_plan: Plan) -> str:
    o = the_plan.options
    who = f"upstream {o.host}" if o.role == "upstream" else "proxy"
    out = [f"# sheer net plan for the {who}" + (f", DSR {o.dsr}" if o.dsr else "")]
    out += [f"# problem: {p}" for p in the_plan.problems]
    out += [f"# note: {n}" for n in the_plan.notes]
    if not the_plan.items:
        out.append("# nothing to apply")
        return "\n".join(out)
    out += ["", "# as the article writes it:", *the_plan.commands()]
    nft = the_plan.nft()
    if nft:
        out += ["", "# the nft table sheer loads (one transaction; `sheer net revert` deletes it):",
                nft.rstrip()]
    for item in the_plan.items:
        if isinstance(item, BirdFragment):
            out += ["", f"# BIRD's fragment {item.path} (`birdc -s {item.socket} configure` reads it):",
                    item.text.rstrip()]
    return "\n".join(out)

