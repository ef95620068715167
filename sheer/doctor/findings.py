"""What every check of `sheer doctor` reports: findings (ok, warning, problem, with evidence and the exact
fix), and the causes several checks share, folded into one finding each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sheer.doctor.state import State

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


def exit_status(findings: list[Finding]) -> int:
    return 1 if any(f.status == "problem" for f in findings) else 0


def unread(name: str, s: State) -> list[Finding]:
    """A check that needs the nft ruleset says it could not be made, never "ok" or a guessed problem."""
    if s.nft_error is None:
        return []
    return [Finding(name, "warning", "not checked: the nft ruleset could not be read", (s.nft_error,),
                    ("nft -j list ruleset   # run as root; nftables must be installed",),
                    Cause("nft unreadable", "the nft ruleset could not be read: the checks that need it were "
                          "not made", ("nft -j list ruleset   # run as root; nftables must be installed",)))]


def unknown_sysctl(name: str, key: str) -> Finding:
    return Finding(name, "warning", f"not checked: {key} could not be read",
                   (f"/proc/sys/{key.replace('.', '/')}",),
                   (f"sysctl {key}",))
