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


# The NGINX admin guide's DNS health check: ask stl.umsl.edu, expect "health.is.good" (the lab's
# dnsmasq answers it with a CNAME to health.is.good).
DNS_QUERY = (r"\x00\x2a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"      # header: id 42, one question
             r"\x03\x73\x74\x6c\x04\x75\x6d\x73\x6c\x03\x65\x64\x75\x00"  # stl.umsl.edu
             r"\x00\x01\x00\x01")                                          # A, IN


def fleet(state: str, announce: str = "") -> str:
    """One fleet proxy's configuration (`state`: its directory): the article's DSR server, balanced
    by Maglev over the client's ip:port so every proxy picks the same upstream for a client, checked
    once a second (`mandatory`: no traffic before a check passed), run as a daemon with a pid file
    (`sheer -s quit`); `announce`: the directives that announce the VIP."""
    return f"""user root;
worker_processes 1;
daemon on;
pid {state}/sheer.pid;
error_log {state}/error.log info;
{announce}
events {{
    worker_connections 1024;
}}

stream {{
    upstream dns_upstreams {{
        hash $remote_addr$remote_port maglev;{_servers(DNS_PORT)}
    }}

    match dns {{
        send {DNS_QUERY};
        expect ~* "health.is.good";
    }}

    server {{
        listen {DNS_PORT} udp;
        proxy_responses 0;
        proxy_timeout 1s;
        proxy_bind $remote_addr:$remote_port transparent;
        health_check interval=1s fails=2 passes=1 match=dns udp mandatory;
        health_check_timeout 500ms;
        proxy_pass dns_upstreams;
    }}
}}
"""


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
