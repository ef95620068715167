"""The lab's diagrams are readable: no text overlaps another text, a marker or a box it does not
belong to, nothing leaves the canvas, requests and replies run in separate lanes; rendered to PNG
with rsvg-convert (valid SVG of the size it says)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from itertools import combinations
from pathlib import Path

import pytest

from sheer.lab import diagram

METHODS = sorted(diagram.PATHS)


@pytest.mark.parametrize("method", METHODS)
def test_no_label_overlaps_and_nothing_is_cut_off(method: str) -> None:
    picture = diagram.drawing(method)
    for shape in picture.shapes:
        assert shape.x >= 0 and shape.y >= 0, shape
        assert shape.x + shape.w <= picture.width and shape.y + shape.h <= picture.height, shape
    readable = [s for s in picture.shapes if s.kind in ("text", "marker")]
    boxes = [s for s in picture.shapes if s.kind == "box"]
    for a, b in combinations(readable, 2):
        assert not a.overlaps(b), (a.svg, b.svg)
    for text in readable:
        inside = [box for box in boxes if box.x <= text.x and text.x + text.w <= box.x + box.w
                  and box.y <= text.y and text.y + text.h <= box.y + box.h]
        for box in boxes:
            if box not in inside:
                assert not text.overlaps(box, pad=0), (text.svg, box.svg)


@pytest.mark.parametrize("method", METHODS)
def test_request_and_reply_arrows_never_share_a_line(method: str) -> None:
    lines = [s for s in diagram.drawing(method).shapes if s.kind == "line"]
    horizontal = [s for s in lines if s.h == 0]
    for a, b in combinations(horizontal, 2):
        if a.y == b.y:
            assert a.x + a.w <= b.x or b.x + b.w <= a.x, (a.svg, b.svg)
    markers = [s for s in diagram.drawing(method).shapes if s.kind == "marker"]
    legs = len(diagram.PATHS[method].request) + len(diagram.PATHS[method].reply)
    assert len(markers) == legs and len(lines) == legs


def test_a_long_title_wraps_instead_of_running_off() -> None:
    title = [s for s in diagram.drawing("dsr-router").shapes if s.kind == "text"
             and "font-weight=\"bold\"" in s.svg
             and "dsr-router" in s.svg or "kernel" in s.svg]
    assert title
    assert all(s.x + s.w <= diagram.drawing("dsr-router").width - diagram.MARGIN for s in title)


def test_the_geometry_test_would_see_an_overlap() -> None:
    a = diagram._text(10, 20, "some label text", 12)
    b = diagram._text(30, 22, "another", 12)
    assert a.overlaps(b)


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="rsvg-convert is not installed (make deps)")
@pytest.mark.parametrize("method", METHODS)
def test_renders_to_png_with_rsvg_convert(method: str, tmp_path: Path) -> None:
    source = tmp_path / f"{method}.svg"
    source.write_text(diagram.svg(method))
    png = tmp_path / f"{method}.png"
    done = subprocess.run(["rsvg-convert", "-o", str(png), str(source)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and not done.stderr, done.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    picture = diagram.drawing(method)
    assert (width, height) == (round(picture.width), round(picture.height))
