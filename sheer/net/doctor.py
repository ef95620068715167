"""`sheer doctor`: the article's troubleshooting list, as checks over recorded kernel state.

What a configuration needs (`Needs`) comes from the same plan `sheer net plan` prints; each check is a
pure function (Needs, State) -> findings, in `sheer.net.doctor_checks`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sheer.config.model import Config
from sheer.net.doctor_state import State
from sheer.net.facts import KernelFacts
from sheer.net.plan import Dsr, Options, Plan, Role, Service, client_facing, plan, services

Status = Literal["ok", "warning", "problem"]
SEVERITY: dict[Status, int] = {"ok": 0, "warning": 1, "problem": 2}


@dataclass(frozen=True, slots=True)
class Cause:
    """One thing wrong on the host that several checks see (one missing route makes every probe of
    every upstream fail): the findings naming the same cause are reported as one, with one fix."""

    key: str
    summary: str
    fix: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    check: str                     # "privileges", "policy routing", ...
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()      # exact commands, in order
    cause: Cause | None = None     # set when this finding is a symptom of a cause others share
    symptoms: int = 1              # how many findings `group` folded into this one

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "summary": self.summary,
                "evidence": list(self.evidence), "fix": list(self.fix),
                "cause": self.cause.key if self.cause else None, "symptoms": self.symptoms}


def group(findings: list[Finding]) -> list[Finding]:
    """Fold the symptoms of one cause into one finding, where the first of them stood: the cause's
    summary and fix, each symptom's evidence (or its summary, when it has none) as evidence, the worst
    status."""
    folded: dict[str, list[Finding]] = {}
    order: list[Finding | str] = []
    for f in findings:
        if f.cause is None:
            order.append(f)
            continue
        if f.cause.key not in folded:
            folded[f.cause.key] = []
            order.append(f.cause.key)
        folded[f.cause.key].append(f)
    out = []
    for item in order:
        if isinstance(item, Finding):
            out.append(item)
            continue
        same = folded[item]
        cause = same[0].cause
        assert cause is not None
        evidence = [line for f in same for line in (f.evidence or (f"{f.check}: {f.summary}",))]
        out.append(Finding(", ".join(dict.fromkeys(f.check for f in same)),
                           max((f.status for f in same), key=SEVERITY.__getitem__), cause.summary,
                           tuple(dict.fromkeys(evidence)), cause.fix, cause, len(same)))
    return out


@dataclass(frozen=True, slots=True)
class Needs:
    """What the configuration asks of this host."""

    conf: str
    options: Options
    plan: Plan
    transparent: tuple[Service, ...]           # Method 1 services (replies come back to us)
    dsr: tuple[Service, ...]                   # DSR services
    public_if: str | None                      # proxy: the interface facing the clients
    user: tuple[str, str | None] | None
    client: str | None = None                  # --client, or None
    needs_transparency: bool = False
    upstream_hosts: tuple[str, ...] = field(default=())

    @property
    def role(self) -> Role:
        return self.options.role

    @property
    def dsr_mode(self) -> Dsr | None:
        if not self.dsr:
            return None
        return self.options.dsr or "router"

    def net_apply(self, *extra: str) -> str:
        """The sheer command that makes this host's share true."""
        o = self.options
        args = [f"sheer net apply -c {self.conf}"]
        if o.role == "upstream":
            args.append(f"--role upstream --host {o.host}")
        if o.dsr:
            args.append(f"--dsr {o.dsr}")
        return " ".join([*args, *extra])


def needs(config: Config, options: Options, facts: KernelFacts, conf: str,
          client: str | None = None) -> Needs:
    found = services(config)
    the_plan = plan(config, options, facts)
    public_if = options.public_if or (client_facing(facts, found) if found else None)
    hosts = tuple(dict.fromkeys(u.host for s in found for u in s.upstreams))
    return Needs(conf, options, the_plan, tuple(s for s in found if not s.dsr),
                 tuple(s for s in found if s.dsr),
                 public_if, config.user, client, _transparent_binds(config), hosts)


def _transparent_binds(config: Config) -> bool:
    """Any `proxy_bind ... transparent` (as sheer.runtime.privileges.needs_transparency; runtime is above
    net)."""
    binds = [s.proxy_bind for s in (config.stream.servers if config.stream else ())]
    binds += [loc.proxy_bind for h in (config.http.servers if config.http else ()) for loc in h.locations]
    return any(b is not None and b.transparent for b in binds)


def diagnose(n: Needs, state: State) -> list[Finding]:
    from sheer.net.doctor_checks import CHECKS

    return group([finding for check in CHECKS for finding in check(n, state)])


def exit_status(findings: list[Finding]) -> int:
    return 1 if any(f.status == "problem" for f in findings) else 0


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
