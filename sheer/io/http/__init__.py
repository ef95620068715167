"""The HTTP/1.x reverse proxy (nginx's http proxy semantics) driven by asyncio protocols."""

from __future__ import annotations

from sheer.io.http.service import HttpService
from sheer.io.http.upstream_pool import UpstreamPool, open_upstream

__all__ = ["HttpService", "UpstreamPool", "open_upstream"]
