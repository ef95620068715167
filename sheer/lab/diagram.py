"""The path each method's packets take: a terminal drawing and an SVG, from one description."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Leg:
    src: str  # client, proxy, upstream, rr
    dst: str
    label: str


@dataclass(frozen=True)
class Path_:
    request: tuple[Leg, ...]
    reply: tuple[Leg, ...]
    note: str


_REQ = Leg("client", "proxy", "to 192.168.99.10")
PATHS = {
    "plain": Path_(
        (_REQ, Leg("proxy", "upstream", "new connection from 172.16.0.1")),
        (Leg("upstream", "proxy", "to 172.16.0.1"), Leg("proxy", "client", "from 192.168.99.10")),
        "the proxy terminates both sides; upstreams see the proxy",
    ),
    "transparency": Path_(
        (_REQ, Leg("proxy", "upstream", "from 192.168.99.1 (IP_TRANSPARENT)")),
        (Leg("upstream", "proxy", "to 192.168.99.1, marked, delivered locally"), Leg("proxy", "client", "from 192.168.99.10")),
        "upstreams see the client; replies still end in the proxy",
    ),
    "dsr-router": Path_(
        (_REQ, Leg("proxy", "upstream", "from 192.168.99.1:port (no session)")),
        (Leg("upstream", "proxy", "to 192.168.99.1:port, forwarded"), Leg("proxy", "client", "source rewritten to 192.168.99.10")),
        "replies are forwarded by the proxy's kernel, never seen by the proxy process",
    ),
    "dsr-origin": Path_(
        (_REQ, Leg("proxy", "upstream", "from 192.168.99.1:port (no session)")),
        (Leg("upstream", "rr", "source rewritten to 192.168.99.10 on the upstream"), Leg("rr", "client", "forwarded")),
        "replies bypass the proxy: the return router forwards them",
    ),
}

_TERMINAL = {
    "plain": [
        "  client ──(1)──▶ proxy ──(2)──▶ upstream",
        "  client ◀──(4)── proxy ◀──(3)── upstream",
    ],
    "transparency": [
        "  client ──(1)──▶ proxy ──(2)──▶ upstream",
        "  client ◀──(4)── proxy ◀──(3)── upstream",
    ],
    "dsr-router": [
        "  client ──(1)──▶ proxy ──(2)──▶ upstream",
        "  client ◀──(4)── proxy ◀──(3)── upstream    (3→4 forwarded in the kernel)",
    ],
    "dsr-origin": [
        "  client ──(1)──▶ proxy ──(2)──▶ upstream",
        "    ▲                               │",
        "    └──(4)── return router ◀──(3)───┘",
    ],
}


def terminal(method: str) -> list[str]:
    path = PATHS[method]
    legs = [*path.request, *path.reply]
    return [*_TERMINAL[method], *(f"  ({i}) {leg.src} → {leg.dst}: {leg.label}" for i, leg in enumerate(legs, 1)), f"  {path.note}"]


_POS = {"client": (90, 70), "proxy": (340, 70), "upstream": (590, 70), "rr": (340, 230)}
_NAMES = {
    "client": ("client", "192.168.99.1"),
    "proxy": ("proxy", "192.168.99.10 | 172.16.0.1"),
    "upstream": ("upstreams", "172.16.0.11–14"),
    "rr": ("return router", "192.168.99.254 | 172.16.0.254"),
}


def _arrow(leg: Leg, n: int, color: str, offset: int) -> str:
    (x1, y1), (x2, y2) = _POS[leg.src], _POS[leg.dst]
    dx, dy = x2 - x1, y2 - y1
    length = (dx * dx + dy * dy) ** 0.5
    ux, uy = dx / length, dy / length
    # shorten to the box edges, shift sideways so request and reply arrows do not overlap
    sx, sy = -uy * offset, ux * offset
    a = (x1 + ux * 75 + sx, y1 + uy * 40 + sy)
    b = (x2 - ux * 75 + sx, y2 - uy * 40 + sy)
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    return (
        f'<line x1="{a[0]:.0f}" y1="{a[1]:.0f}" x2="{b[0]:.0f}" y2="{b[1]:.0f}" stroke="{color}" '
        f'stroke-width="2" marker-end="url(#head-{color[1:]})"/>'
        f'<text x="{mx + sx:.0f}" y="{my + sy * 1.6 + 4:.0f}" font-size="11" text-anchor="middle" fill="{color}">'
        f"({n}) {escape(leg.label)}</text>"
    )


def svg(method: str) -> str:
    path = PATHS[method]
    used = {leg.src for leg in (*path.request, *path.reply)} | {leg.dst for leg in (*path.request, *path.reply)}
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="700" height="320" font-family="sans-serif">',
        "<defs>",
        *(
            f'<marker id="head-{c}" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
            f'<path d="M0,0 L8,4 L0,8 z" fill="#{c}"/></marker>'
            for c in ("1f6feb", "d97706")
        ),
        "</defs>",
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(method)}: {escape(path.note)}</text>',
    ]
    for name, (x, y) in _POS.items():
        if name not in used and name == "rr":
            continue
        title, addr = _NAMES[name]
        parts.append(
            f'<rect x="{x - 75}" y="{y - 28}" width="150" height="56" rx="8" fill="#f6f8fa" stroke="#57606a"/>'
            f'<text x="{x}" y="{y - 4}" font-size="13" text-anchor="middle">{title}</text>'
            f'<text x="{x}" y="{y + 14}" font-size="10" text-anchor="middle" fill="#57606a">{escape(addr)}</text>'
        )
    n = 1
    for leg in path.request:
        parts.append(_arrow(leg, n, "#1f6feb", -14))
        n += 1
    for leg in path.reply:
        parts.append(_arrow(leg, n, "#d97706", 14))
        n += 1
    parts.append(
        '<text x="10" y="305" font-size="11"><tspan fill="#1f6feb">blue: request</tspan>'
        '  <tspan fill="#d97706">orange: reply</tspan></text></svg>'
    )
    return "\n".join(parts) + "\n"
