"""The path each method's packets take: a terminal drawing and an SVG, from one description.

The SVG is laid out as geometry first (`drawing()`: every box, arrow marker and text line with its
rectangle), then written: tests check that no text overlaps another or a box and that nothing
leaves the canvas. Requests travel in a lane above the hosts' centre line and replies in one
below, whatever their direction; each arrow carries a numbered marker, and the numbered legend
under the hosts says what happens on each leg (one line per leg: labels never meet).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from itertools import pairwise


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
        (Leg("upstream", "proxy", "to 192.168.99.1, marked, delivered locally"),
         Leg("proxy", "client", "from 192.168.99.10")),
        "upstreams see the client; replies still end in the proxy",
    ),
    "dsr-router": Path_(
        (_REQ, Leg("proxy", "upstream", "from 192.168.99.1:port (no session)")),
        (Leg("upstream", "proxy", "to 192.168.99.1:port, forwarded"),
         Leg("proxy", "client", "source rewritten to 192.168.99.10")),
        "replies are forwarded by the proxy's kernel, never seen by the proxy process",
    ),
    "dsr-origin": Path_(
        (_REQ, Leg("proxy", "upstream", "from 192.168.99.1:port (no session)")),
        (Leg("upstream", "rr", "source rewritten to 192.168.99.10 on the upstream"),
         Leg("rr", "client", "forwarded")),
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
    return [*_TERMINAL[method],
            *(f"  ({i}) {leg.src} → {leg.dst}: {leg.label}" for i, leg in enumerate(legs, 1)),
            f"  {path.note}"]


# --- geometry ---------------------------------------------------------------------------------

BOX_W, BOX_H = 220, 58
GAP = 130                    # between boxes: room for an arrow and its marker
MARGIN = 24
LANE = 14                    # requests run this far above the centre line, replies below
CHAR_EM = 0.62               # a sans-serif character's advance, in ems, rounded up (DejaVu Sans ~0.55-0.6)
BLUE, ORANGE = "#1f6feb", "#d97706"

_NAMES = {
    "client": ("client", "192.168.99.1"),
    "proxy": ("proxy", "192.168.99.10 | 172.16.0.1"),
    "upstream": ("upstreams", "172.16.0.11–14"),
    "rr": ("return router", "192.168.99.254 | 172.16.0.254"),
}


@dataclass(frozen=True)
class Shape:
    """One drawn thing and the rectangle it covers (x, y: top left)."""

    kind: str          # "box", "text", "marker", "line"
    x: float
    y: float
    w: float
    h: float
    svg: str

    def overlaps(self, other: Shape, pad: float = 1.0) -> bool:
        return not (self.x + self.w + pad <= other.x or other.x + other.w + pad <= self.x
                    or self.y + self.h + pad <= other.y or other.y + other.h + pad <= self.y)


@dataclass(frozen=True)
class Drawing:
    width: float
    height: float
    shapes: tuple[Shape, ...]


def text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR_EM


def _text(x: float, y: float, text: str, size: float, color: str = "#1d2330", anchor: str = "start",
          weight: str = "normal") -> Shape:
    """Text with its baseline at y; its box spans the ascent and descent of the font size."""
    w = text_width(text, size)
    left = x - w / 2 if anchor == "middle" else x
    return Shape("text", left, y - size, w, size * 1.3,
                 f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size:g}" text-anchor="{anchor}" fill="{color}" '
                 f'font-weight="{weight}">{escape(text)}</text>')


def _wrap(text: str, size: float, width: float) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _positions(method: str) -> dict[str, tuple[float, float]]:
    """Box centres: client, proxy, upstreams in a row; the return router under the proxy."""
    top = MARGIN + 60
    step = BOX_W + GAP
    x0 = MARGIN + BOX_W / 2
    places = {"client": (x0, top), "proxy": (x0 + step, top), "upstream": (x0 + 2 * step, top)}
    if any("rr" in (leg.src, leg.dst) for leg in (*PATHS[method].request, *PATHS[method].reply)):
        places["rr"] = (x0 + step, top + BOX_H + 90)
    return places


def _arrow(points: list[tuple[float, float]], n: int, color: str) -> list[Shape]:
    """A polyline with an arrow head, and its numbered marker in the middle of its longest segment."""
    coords = " ".join(f"{x:.0f},{y:.0f}" for x, y in points)
    xs, ys = [x for x, _ in points], [y for _, y in points]
    line = Shape("line", min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys),
                 f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2" '
                 f'marker-end="url(#head-{color[1:]})"/>')
    segments = list(pairwise(points))
    (ax, ay), (bx, by) = max(segments, key=lambda s: abs(s[1][0] - s[0][0]) + abs(s[1][1] - s[0][1]))
    mx, my = (ax + bx) / 2, (ay + by) / 2
    r = 10
    marker = Shape("marker", mx - r, my - r, 2 * r, 2 * r,
                   f'<circle cx="{mx:.0f}" cy="{my:.0f}" r="{r}" fill="#fff" stroke="{color}" '
                   f'stroke-width="2"/><text x="{mx:.0f}" y="{my + 4:.0f}" font-size="11" '
                   f'text-anchor="middle" fill="{color}" font-weight="bold">{n}</text>')
    return [line, marker]


def _route(leg: Leg, lane: float, places: dict[str, tuple[float, float]]) -> list[tuple[float, float]]:
    (x1, y1), (x2, y2) = places[leg.src], places[leg.dst]
    half_w, half_h = BOX_W / 2, BOX_H / 2
    if y1 == y2:                                  # along the row, in the leg's lane
        direction = 1 if x2 > x1 else -1
        return [(x1 + direction * half_w, y1 + lane), (x2 - direction * (half_w + 2), y2 + lane)]
    if leg.dst == "rr":                            # upstream: down, then left into the router's side
        return [(x1, y1 + half_h), (x1, y2), (x2 + half_w + 2, y2)]
    return [(x1 - half_w, y1), (x2, y1), (x2, y2 + half_h + 2)]   # router: left, then up into the client


def drawing(method: str) -> Drawing:
    path = PATHS[method]
    places = _positions(method)
    width = MARGIN * 2 + 3 * BOX_W + 2 * GAP
    shapes: list[Shape] = []
    title = f"{method}: {path.note}"
    y = MARGIN + 4
    for line in _wrap(title, 15, width - 2 * MARGIN):
        shapes.append(_text(MARGIN, y, line, 15, weight="bold"))
        y += 20
    shift = max(0.0, y - (MARGIN + 60 - BOX_H / 2 - 12))   # a wrapped title pushes the hosts down
    places = {name: (x, cy + shift) for name, (x, cy) in places.items()}
    for name, (x, cy) in places.items():
        label, address = _NAMES[name]
        shapes.append(Shape("box", x - BOX_W / 2, cy - BOX_H / 2, BOX_W, BOX_H,
                            f'<rect x="{x - BOX_W / 2:.0f}" y="{cy - BOX_H / 2:.0f}" width="{BOX_W}" '
                            f'height="{BOX_H}" rx="8" fill="#f6f8fa" stroke="#57606a"/>'))
        shapes.append(_text(x, cy - 4, label, 14, anchor="middle"))
        shapes.append(_text(x, cy + 15, address, 11, "#57606a", anchor="middle"))
    legs = [(leg, BLUE, -LANE) for leg in path.request] + [(leg, ORANGE, LANE) for leg in path.reply]
    for n, (leg, color, lane) in enumerate(legs, 1):
        shapes.extend(_arrow(_route(leg, lane, places), n, color))
    bottom = max(s.y + s.h for s in shapes) + 30
    for n, (leg, color, _) in enumerate(legs, 1):
        src, dst = _NAMES[leg.src][0], _NAMES[leg.dst][0]
        for line in _wrap(f"({n}) {src} → {dst}: {leg.label}", 12, width - 2 * MARGIN):
            shapes.append(_text(MARGIN, bottom, line, 12, color))
            bottom += 18
    bottom += 6
    shapes.append(_text(MARGIN, bottom, "blue: request", 12, BLUE))
    shapes.append(_text(MARGIN + text_width("blue: request", 12) + 24, bottom, "orange: reply", 12, ORANGE))
    return Drawing(width, bottom + MARGIN, tuple(shapes))


def svg(method: str) -> str:
    picture = drawing(method)
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{picture.width:.0f}" height="{picture.height:.0f}" '
         f'viewBox="0 0 {picture.width:.0f} {picture.height:.0f}" font-family="DejaVu Sans, sans-serif">'),
        f'<rect width="{picture.width:.0f}" height="{picture.height:.0f}" fill="#fff"/>',
        "<defs>",
        *(
            f'<marker id="head-{c[1:]}" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
            f'<path d="M0,0 L8,4 L0,8 z" fill="{c}"/></marker>'
            for c in (BLUE, ORANGE)
        ),
        "</defs>",
    ]
    order = {"box": 0, "line": 1, "marker": 2, "text": 3}
    parts.extend(shape.svg for shape in sorted(picture.shapes, key=lambda s: order[s.kind]))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
