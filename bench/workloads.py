"""The workloads of issue 8: one configuration (run unchanged by sheer and by nginx), the kernel
plumbing it needs, a load, and the target ratio sheer/nginx."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench import idle, loads, tls, upstreams
from bench.loads import Sample
from bench.upstreams import UDP_SINK_PORT
from sheer.lab.dualstack import VIP6
from sheer.lab.testing import Lab
from sheer.lab.topology import VIP, article

WORKERS = 2
TCP_PORT = 8080  # stream proxy -> the upstreams' quiet nginx (keepalive request/response)
MEM_UDP_WORKERS = 6


@dataclass(frozen=True)
class Context:
    """What a measurement may use: the lab, the seconds it should last, the proxy's master PID."""

    lab: Lab
    duration: float
    pid: int


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    config: str
    method: str  # plumbing: transparency | dsr-router | dsr-origin
    measure: Callable[[Context], Sample]
    target: float  # sheer/nginx
    higher_is_better: bool = True
    target_note: str = ""
    warmup: bool = True
    sheer_config: str | None = None  # where sheer safely does more than nginx can (see HTTP)
    ceiling: float | None = None  # the best ratio this machine allows any proxy (docs/performance.md)
    sheer_apply: tuple[str, ...] = ()  # more `sheer net apply` options for sheer's runs (`--fastpath off`)
    # sheer's runs replaced by no proxy at all, measured with this load (the ceiling: the client's
    # datagrams routed)
    routed: Callable[[Context], Sample] | None = None
    prepare: Callable[[Lab], None] | None = None   # before either proxy starts (certificates)
    # needs the dual-stack lab (sheer.lab.dualstack) and the bench's IPv6 dnsmasq; the article's
    # reference rules are IPv4's, so nginx runs on sheer's plumbing (`--fastpath off`) there
    ipv6: bool = False

    def config_for(self, kind: str) -> str:
        return self.sheer_config if kind == "sheer" and self.sheer_config else self.config

    @property
    def routing(self) -> bool:
        return self.routed is not None

    def meets(self, ratio: float) -> bool:
        return ratio >= self.target if self.higher_is_better else ratio <= self.target


def header(worker_connections: int = 16384, workers: int = WORKERS) -> str:
    return (f"user root;\nworker_processes {workers};\n\n"
            f"events {{\n    worker_connections {worker_connections};\n}}\n\n")


def _servers(port: int | None, count: int = 4) -> str:
    suffix = f":{port}" if port else ""
    return "".join(f"\n        server {n.address()}{suffix};" for n in article().upstreams[:count])


HTTP = header() + f"""http {{
    upstream web {{{_servers(upstreams.HTTP_PORT)}
    }}
    server {{
        listen 80 reuseport;
        location / {{
            proxy_bind $remote_addr transparent;
            proxy_pass http://web;
        }}
    }}
}}
"""

# nginx opens an upstream connection per request here: its keepalive cache is keyed by upstream
# only, so with proxy_bind transparent it would hand one client's connection to another. sheer
# keys its pool by source address (DESIGN.md), so it runs the safe keepalive variant.
HTTP_SHEER = HTTP.replace("""            proxy_pass http://web;""", """            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://web;""").replace("""server 172.16.0.14:8080;
    }""", """server 172.16.0.14:8080;
        keepalive 64;
    }""")

TCP = header() + f"""stream {{
    upstream tcp_upstreams {{{_servers(upstreams.HTTP_PORT)}
    }}
    server {{
        listen {TCP_PORT} reuseport;
        proxy_bind $remote_addr transparent;
        proxy_pass tcp_upstreams;
    }}
}}
"""

BULK = header() + f"""stream {{
    upstream bulk {{
        server 172.16.0.11:{upstreams.IPERF_PORT};
    }}
    server {{
        listen {upstreams.IPERF_PORT} reuseport;
        proxy_bind $remote_addr transparent;
        proxy_pass bulk;
    }}
}}
"""


def _dns_servers() -> str:
    return "".join(f"\n        server {upstreams.dns_address(n)}:53;" for n in article().upstreams)


def dns(bind: str, responses: int, timeout: str = "1s") -> str:
    return header() + f"""stream {{
    upstream dns_upstreams {{{_dns_servers()}
    }}
    server {{
        listen 53 udp reuseport;
        proxy_responses {responses};
        proxy_timeout {timeout};
        proxy_bind {bind};
        proxy_pass dns_upstreams;
    }}
}}
"""


def dns6(bind: str, responses: int, timeout: str = "1s") -> str:
    """`dns()` over IPv6: the VIP's IPv6 twin, the quiet dnsmasq's IPv6 addresses (fd00:16::2N)."""
    servers = "".join(f"\n        server [{upstreams.dns_address6(n)}]:53;" for n in article().upstreams)
    return dns(bind, responses, timeout).replace(_dns_servers(), servers).replace(
        "listen 53 udp reuseport;", "listen [::]:53 udp reuseport;")


DNS_PROXIED = dns("$remote_addr transparent", 1)
DNS_DSR = dns("$remote_addr:$remote_port transparent", 0)
# nginx has no active health checks (nginx Plus does): sheer refuses DSR without one unless told,
# and the benchmark compares the same work, so sheer runs unchecked like nginx
DNS_DSR_SHEER = DNS_DSR.replace("proxy_responses 0;",
                                "proxy_responses 0;\n        dsr_without_health_check on;")
# nginx needs the client's address in brackets over IPv6: `$remote_addr:$remote_port` renders as
# "fd00:99::1:40000", which nginx's ngx_parse_addr_port reads as one IPv6 address without a port (or
# none at all), so its datagrams leave from a wrong address (tests/lab/test_ipv6.py)
DNS_DSR6 = dns6("[$remote_addr]:$remote_port transparent", 0)
DNS_DSR6_SHEER = dns6("$remote_addr:$remote_port transparent", 0).replace(
    "proxy_responses 0;", "proxy_responses 0;\n        dsr_without_health_check on;")

# Idle flows. The hard RLIMIT_NOFILE here is 20,000 (no CAP_SYS_RESOURCE to raise it), and every
# UDP session holds one socket: 100,000 sessions need 6 workers (~16,700 each, by SO_REUSEPORT's
# hash). nginx counts 2 connections per UDP session (client and upstream side).
MEM_TCP = header(worker_connections=30000) + f"""stream {{
    upstream tcp_upstreams {{{_servers(upstreams.HTTP_PORT)}
    }}
    server {{
        listen {TCP_PORT} reuseport;
        proxy_timeout 10m;
        proxy_bind $remote_addr transparent;
        proxy_pass tcp_upstreams;
    }}
}}
"""

MEM_UDP = header(worker_connections=40000, workers=MEM_UDP_WORKERS) + f"""stream {{
    upstream udp_sink {{{_servers(UDP_SINK_PORT)}
    }}
    server {{
        listen 53 udp reuseport;
        proxy_timeout 10m;
        proxy_bind $remote_addr transparent;
        proxy_pass udp_sink;
    }}
}}
"""


def _http(ctx: Context) -> Sample:
    return loads.wrk(ctx.lab, f"http://{VIP}/", ctx.duration)


def _tcp_keepalive(ctx: Context) -> Sample:
    return loads.wrk(ctx.lab, f"http://{VIP}:{TCP_PORT}/", ctx.duration)


def _tcp_new(ctx: Context) -> Sample:
    return loads.wrk(ctx.lab, f"http://{VIP}:{TCP_PORT}/", ctx.duration, connections=32, close=True,
                     unit="conn/s")


def _dns(ctx: Context) -> Sample:
    return loads.dnsperf(ctx.lab, ctx.duration)


def _dns6(ctx: Context) -> Sample:
    return loads.dnsperf(ctx.lab, ctx.duration, server=str(VIP6))


def _dns_routed(ctx: Context) -> Sample:
    # no proxy: dnsperf asks the upstreams' quiet dnsmasq themselves, through the proxy's namespace as a
    # plain router that spreads the client's sockets over the four (ECMP; bench.runner._routing)
    return loads.dnsperf(ctx.lab, ctx.duration, server=upstreams.ANYCAST)


def _bulk(ctx: Context) -> Sample:
    return loads.iperf3(ctx.lab, upstreams.IPERF_PORT, ctx.duration)


def _tls_handshakes(ctx: Context) -> Sample:
    return tls.handshakes(ctx.lab, ctx.duration)


def _tls_keepalive(ctx: Context) -> Sample:
    return loads.wrk(ctx.lab, f"https://{VIP}/", ctx.duration)


def _tls_bulk(ctx: Context) -> Sample:
    return tls.bulk(ctx.lab, ctx.duration)


def _mem_tcp(ctx: Context) -> Sample:
    return idle.tcp(ctx.lab, ctx.pid, count=idle.TCP_COUNT, port=TCP_PORT, seconds=max(ctx.duration * 6, 30))


def _mem_udp(ctx: Context) -> Sample:
    return idle.udp(ctx.lab, ctx.pid, count=idle.UDP_COUNT, port=53, seconds=max(ctx.duration * 6, 30))


WORKLOADS: tuple[Workload, ...] = (
    Workload("dns-proxied", "UDP DNS proxied, proxy_responses 1, transparent", DNS_PROXIED, "transparency",
             _dns, 1.0),
    # DSR: sheer's kernel fast path (`sheer net apply` installs it by default), its user-space path
    # (`--fastpath off`), and the machine's ceiling: no proxy at all, the client's datagrams routed
    Workload("dns-dsr-router", "UDP DNS DSR, router NAT, kernel fast path", DNS_DSR, "dsr-router", _dns, 2.0,
             target_note="and loss < 0.1%", sheer_config=DNS_DSR_SHEER),
    Workload("dns-dsr-origin", "UDP DNS DSR, origin NAT, kernel fast path", DNS_DSR, "dsr-origin", _dns, 2.0,
             target_note="and loss < 0.1%", sheer_config=DNS_DSR_SHEER),
    Workload("dns-dsr-router-user", "UDP DNS DSR, router NAT, user-space path (--fastpath off)", DNS_DSR,
             "dsr-router", _dns, 1.5, target_note="and loss < 0.1%", sheer_config=DNS_DSR_SHEER, ceiling=1.55,
             sheer_apply=("--fastpath", "off")),
    Workload("dns-dsr-origin-user", "UDP DNS DSR, origin NAT, user-space path (--fastpath off)", DNS_DSR,
             "dsr-origin", _dns, 1.5, target_note="and loss < 0.1%", sheer_config=DNS_DSR_SHEER, ceiling=1.55,
             sheer_apply=("--fastpath", "off")),
    Workload("dns-ceiling", "UDP DNS, no proxy: the client's datagrams routed to the upstreams (the ceiling; "
             "the sheer column is plain routing, ECMP)", DNS_DSR, "dsr-router", _dns, 2.0,
             routed=_dns_routed),
    # IPv6 DSR: nginx with `proxy_bind [$remote_addr]:$remote_port transparent` (brackets: see DNS_DSR6)
    # on sheer's plumbing without the fast path
    Workload("dns-dsr6-router", "UDP DNS DSR over IPv6, router NAT, kernel fast path", DNS_DSR6, "dsr-router",
             _dns6, 2.0, target_note="and loss < 0.1%", sheer_config=DNS_DSR6_SHEER, ipv6=True),
    Workload("dns-dsr6-router-user", "UDP DNS DSR over IPv6, router NAT, user-space path (--fastpath off)",
             DNS_DSR6, "dsr-router", _dns6, 1.5, target_note="and loss < 0.1%", sheer_config=DNS_DSR6_SHEER,
             sheer_apply=("--fastpath", "off"), ipv6=True),
    Workload("http", "HTTP transparent, keepalive client (wrk -c 50)", HTTP, "transparency", _http, 1.5,
             sheer_config=HTTP_SHEER, ceiling=1.5),
    Workload("tcp-keepalive", "TCP stream transparent, keepalive client (wrk -c 50)", TCP, "transparency",
             _tcp_keepalive, 1.0),
    Workload("tcp-new", "TCP stream transparent, new connection per request (wrk -c 32, Connection: close)",
             TCP, "transparency", _tcp_new, 0.95),
    Workload("bulk", "TCP bulk through the stream proxy, transparent (iperf3, 1 stream)", BULK,
             "transparency",
             _bulk, 0.9, warmup=False),
    Workload("tls-handshake", "TLS 1.3 new handshakes, ECDSA P-256 (openssl s_time -new, 2 clients)",
             tls.HANDSHAKE, "transparency", _tls_handshakes, 0.8, prepare=tls.prepare),
    Workload("tls-keepalive", "HTTPS keepalive through the transparent proxy (wrk -c 50 over TLS)",
             tls.KEEPALIVE, "transparency", _tls_keepalive, 1.0, sheer_config=tls.KEEPALIVE_SHEER,
             prepare=tls.prepare),
    Workload("tls-bulk", "bytes through TLS termination (curl, one HTTPS connection, 256 MiB downloads)",
             tls.BULK, "transparency", _tls_bulk, 0.8, prepare=tls.prepare, warmup=False),
    Workload("mem-tcp", f"RSS per idle TCP connection ({idle.TCP_COUNT:,} client connections)", MEM_TCP,
             "transparency", _mem_tcp, 2.0, higher_is_better=False, warmup=False),
    Workload("mem-udp", f"RSS per UDP session ({idle.UDP_COUNT:,} sessions, {MEM_UDP_WORKERS} workers)",
             MEM_UDP, "transparency", _mem_udp,
             2.0, higher_is_better=False, warmup=False),
)

DSR_GROUP = ("dns-dsr-router", "dns-dsr-origin", "dns-ceiling", "dns-dsr-router-user", "dns-dsr-origin-user")
DSR6_GROUP = ("dns-dsr-router", "dns-dsr6-router", "dns-dsr-router-user", "dns-dsr6-router-user")
GROUPS = {"dns-dsr": DSR_GROUP, "dns-dsr6": DSR6_GROUP, "dns": ("dns-proxied", *DSR_GROUP),
          "tcp": ("tcp-keepalive", "tcp-new"), "mem": ("mem-tcp", "mem-udp"),
          "tls": ("tls-handshake", "tls-keepalive", "tls-bulk")}


def by_name(name: str) -> Workload:
    return next(w for w in WORKLOADS if w.name == name)


def select(names: list[str] | None) -> list[Workload]:
    """Workloads by name or group (dns, dns-dsr, tcp, mem); all of them for None."""
    if not names:
        return list(WORKLOADS)
    by_name = {w.name: w for w in WORKLOADS}
    wanted: list[str] = []
    for name in names:
        for one in GROUPS.get(name, (name,)):
            if one not in by_name:
                known = ", ".join([*by_name, *GROUPS])
                raise KeyError(f"no workload {one!r} (known: {known})")
            if one not in wanted:
                wanted.append(one)
    return [by_name[n] for n in wanted]
