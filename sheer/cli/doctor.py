"""`sheer doctor -c CONF [--role proxy|upstream] [--host ADDR] [--dsr router|origin] [--json]`."""

from __future__ import annotations

import argparse
import json

from sheer.cli.common import DEFAULT_CONF, load_config
from sheer.doctor import Finding, diagnose, exit_status
from sheer.doctor.gather import gather
from sheer.doctor.needs import needs
from sheer.io.sockets import can_be_transparent
from sheer.net import inspect
from sheer.net.plan import Options
from sheer.net.record import Record, record_path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sheer doctor", description=(
        "The article's troubleshooting list, automated: for what the configuration needs here, each check "
        "prints ok / warning / problem with the evidence and the fix. Reads only; exit 0 when nothing is a "
        "problem."))
    p.add_argument("-c", dest="conf", metavar="file", default=DEFAULT_CONF, help="configuration file")
    p.add_argument("--role", choices=("proxy", "upstream"), default="proxy")
    p.add_argument("--host", metavar="ADDR", help="upstream role: this upstream's address in the config")
    p.add_argument("--dsr", choices=("router", "origin"), help="DSR method (default: router)")
    p.add_argument("--vip", metavar="ADDR", help="the public address DSR replies must come from")
    p.add_argument("--gateway", metavar="ADDR", help="upstream role: the proxy's internal address (checked)")
    p.add_argument("--via", metavar="ADDR", help="upstream role, origin NAT: the return router (checked)")
    p.add_argument("--public-if", metavar="DEV", help="the interface facing the clients")
    p.add_argument("--client", metavar="ADDR", help="a client address (default: 198.51.100.1, TEST-NET-2)")
    p.add_argument("--probe", action="store_true", help=(
        "send reachability probes even from the root network namespace (always on in other namespaces, "
        "and for loopback upstreams)"))
    p.add_argument("--json", action="store_true", help="findings as JSON")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    config = load_config(args.conf)
    if config is None:
        return 1
    options = Options(args.role, args.host, args.dsr, public_if=args.public_if, vip=args.vip,
                      gateway=args.gateway, via=args.via)
    facts = inspect.gather()
    record = Record.load(record_path(options.role, options.host))
    planning = facts.excluding(*record.facts()) if record else facts
    wanted = needs(config, options, planning, args.conf, args.client)
    state = gather(wanted, facts, args.probe, can_be_transparent)
    findings = diagnose(wanted, state)
    if args.json:
        print(json.dumps({"ok": exit_status(findings) == 0,
                          "findings": [f.to_json() for f in findings]}, indent=1))
    else:
        print(render(findings))
    return exit_status(findings)


def render(findings: list[Finding]) -> str:
    out = []
    for f in findings:
        seen = f" (seen by {f.symptoms} checks)" if f.symptoms > 1 else ""
        out.append(f"{f.status:<8} {f.check}: {f.summary}{seen}")
        out += [f"           evidence: {e}" for e in f.evidence]
        out += [f"           fix: {c}" for c in f.fix]
    problems = sum(f.status == "problem" for f in findings)
    warnings = sum(f.status == "warning" for f in findings)
    out.append(f"sheer doctor: {problems} problem(s), {warnings} warning(s), "
               f"{len(findings) - problems - warnings} ok")
    return "\n".join(out)
