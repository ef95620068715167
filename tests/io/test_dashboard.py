"""`dashboard;` in Debian's headless Chromium: the page renders every upstream and peer from the API,
refreshes itself, uses no external asset, and its buttons (write access only) drain, take down and
bring back a peer in every worker. SHEER_DASHBOARD_PNG=path keeps the screenshot (docs/dashboard.png)."""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chromium import BINARY, Browser
from sheer_process import Sheer, free_port
from test_status_api import BACKENDS, api, peers, request, spread

pytestmark = [pytest.mark.io,
              pytest.mark.skipif(BINARY is None, reason="chromium is not installed (make deps)")]


def config(front: int, back: int, control: int, write: str) -> str:
    return f"""worker_processes 2;
http {{
    upstream app {{ server {BACKENDS[0]}:{back}; server {BACKENDS[1]}:{back} weight=2; }}
    upstream api_backends {{ server {BACKENDS[0]}:{back}; server {BACKENDS[1]}:{back} backup; }}
    server {{ listen 127.0.0.1:{front}; status_zone shop;
             location / {{ proxy_pass http://app; }} location /v1/ {{ proxy_pass http://api_backends; }} }}
    server {{ listen {BACKENDS[0]}:{back}; listen {BACKENDS[1]}:{back};
             location / {{ return 200 "$server_addr $pid\\n"; }} }}
    server {{ listen 127.0.0.1:{control};
             location /api/ {{ api write={write}; }}
             location = /dashboard.html {{ dashboard; }} }}
}}
stream {{
    upstream dns {{ server {BACKENDS[0]}:53; server {BACKENDS[1]}:53; }}
    server {{ listen 127.0.0.1:{free_port()} udp; status_zone dns; proxy_pass dns; }}
}}
"""


@pytest.fixture(name="browser")
def browser_fixture(tmp_path: Path) -> Iterator[Browser]:
    browser = Browser(tmp_path / "profile")
    try:
        yield browser
    finally:
        browser.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_dashboard_shows_the_api_and_its_buttons_change_every_worker(
        run_sheer: Callable[..., Sheer], browser: Browser, tmp_path: Path) -> None:
    front, back, control = free_port(), free_port(BACKENDS), free_port()
    run_sheer(config(front, back, control, "on"))
    spread(front, 12)
    status, headers, page = request(control, path="/dashboard.html")
    assert status == 200 and headers["content-type"].startswith("text/html")
    # Self-contained: no external script, style, font or image.
    assert not re.search(rb"""(src|href)\s*=\s*["']?(https?:)?//""", page), page[:200]
    assert b"<script src" not in page and b"@import" not in page

    browser.open(f"http://127.0.0.1:{control}/dashboard.html")
    browser.wait("document.querySelectorAll('tr[data-peer]').length === 6")
    text = browser.evaluate("document.body.innerText")
    assert "app" in text and "api_backends" in text and "dns" in text and "shop" in text
    assert browser.evaluate("document.querySelector('[data-upstream=\"http/app\"] h2').innerText") \
        .endswith("http upstream, 2 of 2 up")
    # The request count of each peer is the API's (both workers').
    api_requests = [peer["requests"] for peer in peers(control)]
    shown = browser.evaluate("[...document.querySelectorAll('[data-upstream=\"http/app\"] tr[data-peer]')]"
                             ".map(row => Number(row.children[4].innerText))")
    assert shown == api_requests

    row = "document.querySelector('tr[data-peer=\"http/app/1\"]')"
    browser.evaluate(f"{row}.querySelector('button[data-action=drain]').click()")
    browser.wait(f"{row}.querySelector('.state').innerText === 'draining'")
    assert peers(control)[1]["state"] == "draining"
    shot = tmp_path / "dashboard.png"
    browser.screenshot(shot)
    width, height = png_size(shot)
    assert width >= 1000 and height >= 400
    if os.environ.get("SHEER_DASHBOARD_PNG"):
        shutil.copy(shot, os.environ["SHEER_DASHBOARD_PNG"])

    seen = spread(front, 20)
    assert {backend for backend, _ in seen} == {BACKENDS[0]} and len({pid for _, pid in seen}) == 2
    browser.evaluate(f"{row}.querySelector('button[data-action=up]').click()")
    browser.wait(f"{row}.querySelector('.state').innerText === 'up'")
    peer = "document.querySelector('tr[data-peer=\"http/app/0\"]"
    browser.evaluate(f"{peer} button[data-action=down]').click()")
    browser.wait("document.querySelector('tr[data-peer=\"http/app/0\"] .state').innerText === 'down'")
    assert [peer["state"] for peer in peers(control)] == ["down", "up"]
    assert api(control, "9/http/upstreams/app/servers/0")[1]["down"] is True


def test_a_read_only_api_gives_a_dashboard_without_buttons(run_sheer: Callable[..., Sheer],
                                                           browser: Browser) -> None:
    front, back, control = free_port(), free_port(BACKENDS), free_port()
    run_sheer(config(front, back, control, "off"))
    browser.open(f"http://127.0.0.1:{control}/dashboard.html")
    browser.wait("document.querySelectorAll('tr[data-peer]').length === 6")
    assert browser.evaluate("document.querySelectorAll('button').length") == 0
    assert "read only" in browser.evaluate("document.getElementById('meta').innerText")
