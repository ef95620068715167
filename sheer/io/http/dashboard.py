"""`dashboard;`: one self-contained page (no external script, style or font) that polls the `api`
location of its server every second and shows upstreams, peers, health checks, rates and errors;
with `api write=on` each peer gets drain / down / up buttons (PATCH)."""

from __future__ import annotations

import html
from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=1)
def _template() -> str:
    return files("sheer.io.http").joinpath("dashboard.html").read_text(encoding="utf-8")


@lru_cache(maxsize=16)
def page(api: str, write: bool) -> bytes:
    text = _template().replace("{{API}}", html.escape(api, quote=True))
    return text.replace("{{WRITE}}", "true" if write else "false").encode()
