"""What a configuration asks of this host, for `sheer doctor`: the same plan `sheer net plan` prints,
the services it serves transparently or by DSR, the interface facing the clients."""

from __future__ import annotations

from dataclasses import dataclass, field

from sheer.config.model import Config
from sheer.net.facts import KernelFacts
from sheer.net.plan import Dsr, Options, Plan, Role, Service, client_facing, plan, services


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
    announce: tuple[str, ...] = ()                   # the VIPs announced over BGP (proxy role)

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
    announce = tuple(v.address for v in config.announce.vips) if options.role == "proxy" else ()
    return Needs(conf, options, the_plan, tuple(s for s in found if not s.dsr),
                 tuple(s for s in found if s.dsr),
                 public_if, config.user, client, _transparent_binds(config), hosts, announce)


def _transparent_binds(config: Config) -> bool:
    """Any `proxy_bind ... transparent` (as sheer.runtime.privileges.needs_transparency; runtime is above
    the doctor)."""
    binds = [s.proxy_bind for s in (config.stream.servers if config.stream else ())]
    binds += [loc.proxy_bind for h in (config.http.servers if config.http else ()) for loc in h.locations]
    return any(b is not None and b.transparent for b in binds)
