"""The load-balancing directives of an upstream block: `least_conn`, `hash KEY [consistent]`,
`ip_hash`, `random [two [least_conn]]`, and sheer's `hash KEY maglev`.

nginx's wording for errors; the checks nginx makes through its upstream flags (a method that
has no backup servers refuses `backup`) are made here, whichever line comes first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sheer.config.errors import ConfigError, Source
from sheer.config.model import Balance, UpstreamServer
from sheer.config.template import HTTP_VARIABLES, compile_template

METHOD_DIRECTIVES = ("least_conn", "hash", "ip_hash", "random")

# Methods that keep nginx's NGX_*_UPSTREAM_BACKUP flag; the others refuse `backup`.
_BACKUP_OK = frozenset({"round_robin", "least_conn"})

# `hash ... consistent` builds weight x 160 points on its circle and `maglev` a table of weight x 100
# slots: a total weight above this would take a worker minutes and gigabytes to build (nginx would
# fail to allocate it at start-up). The API's `weight` changes are held to the same total.
MAX_TOTAL_WEIGHT = 100_000
EXPANDING = frozenset({"consistent", "maglev"})


def total_weight_problem(method: str, total: int) -> str | None:
    if method in EXPANDING and total > MAX_TOTAL_WEIGHT:
        how = "hash ... consistent" if method == "consistent" else "hash ... maglev"
        return (f'the servers\' total weight {total} is too large for "{how}" (at most {MAX_TOTAL_WEIGHT}: '
                "it builds a table in proportion to the weights); use smaller weights in the same ratio")
    return None


def least_conn(args: list[str], src: Source) -> Balance:
    return Balance("least_conn", source=src)


def ip_hash(args: list[str], src: Source) -> Balance:
    # ngx_http_upstream_ip_hash_module hashes the client's address (after realip), not a template;
    # the balancer turns $remote_addr back into the address bytes nginx reads from the sockaddr.
    return Balance("ip_hash", compile_template("$remote_addr", src, HTTP_VARIABLES), src)


def random(args: list[str], src: Source) -> Balance:
    if not args:
        return Balance("random", source=src)
    if args[0] != "two":
        raise ConfigError(f'invalid parameter "{args[0]}"', src)
    if len(args) == 2 and args[1] != "least_conn":
        raise ConfigError(f'invalid parameter "{args[1]}"', src)
    return Balance("random_two", source=src)   # `two` alone means `two least_conn`, as in nginx


def hash_of(variables: frozenset[str], prefixes: tuple[str, ...]) -> Callable[[list[str], Source], Balance]:
    def convert(args: list[str], src: Source) -> Balance:
        key = compile_template(args[0], src, variables, prefixes)
        if len(args) == 1:
            return Balance("hash", key, src)
        if args[1] == "consistent":
            return Balance("consistent", key, src)
        if args[1] == "maglev":            # sheer-only: a Maglev lookup table (sheer.core.balancers.maglev)
            return Balance("maglev", key, src)
        raise ConfigError(f'invalid parameter "{args[1]}"', src)
    return convert


def upstream_balance(settings: dict[str, Any], sources: dict[str, Source],
                     servers: list[UpstreamServer]) -> Balance:
    """The upstream block's method (round robin when none is named), checked against its servers."""
    named = sorted((sources[name].line, name) for name in METHOD_DIRECTIVES if name in settings)
    if len(named) > 1:
        # nginx only warns ("load balancing method redefined") and keeps the last one; two methods
        # in one block are always a mistake, and sheer has no warnings at load time.
        raise ConfigError(f'load balancing method redefined ("{named[0][1]}" and "{named[1][1]}")',
                          sources[named[1][1]])
    balance: Balance = settings[named[0][1]] if named else Balance()
    problem = total_weight_problem(balance.method, sum(server.weight for server in servers))
    if problem:
        raise ConfigError(problem, balance.source)
    if balance.method not in _BACKUP_OK:
        for server in servers:
            if server.backup:
                raise ConfigError('balancing method does not support parameter "backup"',
                                  server.source or balance.source)
    return balance
