"""The article's configurations, as the demo and the lab tests run them (addresses of the lab)."""

from __future__ import annotations

from sheer.lab.topology import DNS_PORT, HTTP_PORT, article, v6_of


def _servers(port: int | None) -> str:
    suffix = f":{port}" if port else ""
    return "".join(f"\n        server {n.address()}{suffix};" for n in article().upstreams)


def http_block(proxy_bind: str = "") -> str:
    bind = f"\n            proxy_bind {proxy_bind};" if proxy_bind else ""
    return f"""http {{
    upstream http_upstreams {{{_servers(None)}
    }}

    server {{
        listen {HTTP_PORT};

        location / {{{bind}
            proxy_pass http://http_upstreams;
        }}
    }}
}}
"""


def dns_block(proxy_bind: str = "", responses: int = 1, health_check: str = "", listen: str = "") -> str:
    bind = f"\n        proxy_bind {proxy_bind};" if proxy_bind else ""
    if health_check:
        bind += f"\n        {health_check};"
    elif responses == 0 and "$remote_port" in proxy_bind:
        # DSR without an active check is an error unless acknowledged; these configs show the
        # plumbing alone (tests/lab/test_health.py runs DSR with checks)
        bind += "\n        dsr_without_health_check on;"
    return f"""stream {{
    upstream dns_upstreams {{{_servers(DNS_PORT)}
    }}

    server {{
        listen {listen or DNS_PORT} udp;
        proxy_responses {responses};
        proxy_timeout 1s;{bind}
        proxy_pass dns_upstreams;
    }}
}}
"""


HEADER = "user root;\nworker_processes 1;\n\nevents {\n    worker_connections 1024;\n}\n\n"

PLAIN = HEADER + http_block() + "\n" + dns_block()
TRANSPARENT = HEADER + http_block("$remote_addr transparent") + "\n" + dns_block("$remote_addr transparent")
DSR = HEADER + dns_block("$remote_addr:$remote_port transparent", responses=0)



# The dual-stack lab (`sheer lab up --ipv6`): the same services over IPv6, the upstreams' IPv6 twins.
def _servers6(port: int | None) -> str:
    suffix = f":{port}" if port else ""
    return "".join(f"\n        server [{v6_of(n.address(), 'internal')}]{suffix};"
                   for n in article().upstreams)


def http6_block(proxy_bind: str = "") -> str:
    bind = f"\n            proxy_bind {proxy_bind};" if proxy_bind else ""
    return f"""http {{
    upstream http_upstreams6 {{{_servers6(None)}
    }}

    server {{
        listen [::]:{HTTP_PORT};

        location / {{{bind}
            proxy_pass http://http_upstreams6;
        }}
    }}
}}
"""


def dns6_block(proxy_bind: str = "", responses: int = 1) -> str:
    bind = f"\n        proxy_bind {proxy_bind};" if proxy_bind else ""
    if responses == 0 and "$remote_port" in proxy_bind:
        bind += "\n        dsr_without_health_check on;"
    return f"""stream {{
    upstream dns_upstreams6 {{{_servers6(DNS_PORT)}
    }}

    server {{
        listen [::]:{DNS_PORT} udp;
        proxy_responses {responses};
        proxy_timeout 1s;{bind}
        proxy_pass dns_upstreams6;
    }}
}}
"""


TRANSPARENT6 = (HEADER + http6_block("$remote_addr transparent") + "\n"
                + dns6_block("$remote_addr transparent"))
DSR6 = HEADER + dns6_block("$remote_addr:$remote_port transparent", responses=0)


def _merged(first: str, second: str) -> str:
    """Two blocks of one context (`http {...}`, `stream {...}`) as one: nginx allows each once."""
    return first.rstrip().removesuffix("}") + "\n" + second.split("{", 1)[1]


# Dual stack: both families' servers side by side (each family's upstreams behind its own listener)
_T = "$remote_addr transparent"
DUAL_TRANSPARENT = (HEADER + _merged(http_block(_T), http6_block(_T)) + "\n"
                    + _merged(dns_block(_T), dns6_block(_T)))
DUAL_DSR = HEADER + _merged(dns_block("$remote_addr:$remote_port transparent", responses=0),
                            dns6_block("$remote_addr:$remote_port transparent", responses=0))
