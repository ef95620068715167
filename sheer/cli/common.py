"""What every sheer front-end (the main CLI, net, doctor, trace) does the same way."""

from __future__ import annotations

import asyncio
import sys

from sheer.config import Config, ConfigError, load
from sheer.config.model import UpstreamServer
from sheer.config.names import with_peers

DEFAULT_CONF = "/etc/sheer/sheer.conf"


def say(message: str) -> None:
    print(f"sheer: {message}", file=sys.stderr)


def load_config(path: str) -> Config | None:
    """The configuration, or None after saying why not (file:line, nginx's wording). Names written
    with `resolve` are resolved now with their `resolver`, as the running sheer resolves them, so
    what derives from upstream addresses (net plan, doctor, trace) uses the addresses of now."""
    try:
        config = load(path)
    except ConfigError as exc:
        say(f"[emerg] {exc}")
        return None
    return resolved_now(config)


def resolved_now(config: Config) -> Config:
    from sheer.core.peers import slot_server
    from sheer.core.resolve_wire import strerror
    from sheer.io.dns import DnsClient
    from sheer.runtime.peerset import names_of

    names = names_of(config)
    if not names:
        return config

    async def ask() -> dict[tuple[str, str], list[UpstreamServer]]:
        found: dict[tuple[str, str], list[UpstreamServer]] = {}
        for name in names:
            assert name.upstream.resolver is not None
            client = DnsClient(name.upstream.resolver, lambda level, message: say(f"[{level}] {message}"))
            resolution = await client.resolve(name.server.host)
            peers = found.setdefault((name.protocol, name.upstream.name), [])
            if resolution.ok:
                peers += [slot_server(name.server, address) for address in resolution.addresses]
            else:
                say(f"[warn] {name.server.host} could not be resolved ({resolution.code}: "
                    f"{strerror(resolution.code)}): upstream \"{name.upstream.name}\" is taken without its "
                    "peers")
        return found

    return with_peers(config, asyncio.run(ask()))
