"""`geo` and `split_clients`, http and stream: how an address or a string finds its value, and nginx's
errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import Config, ConfigError, load
from sheer.core.maps import lookup, tables_of
from sheer.core.split_clients import murmur_hash2


class Vars:
    def __init__(self, **values: str) -> None:
        self.values = values

    def variable(self, name: str) -> str:
        return self.values.get(name, "")


def http(tmp_path: Path, blocks: str) -> Config:
    path = tmp_path / "lb.conf"
    server = "server { listen 127.0.0.1:8080; location / { return 200 $g; } }"
    path.write_text(f"http {{\n{blocks}\n{server}\n}}\n")
    return load(str(path))


def value(config: Config, name: str = "g", **variables: str) -> str:
    assert config.http is not None
    tables = tables_of(config.http.maps, config.http.geos, config.http.splits)
    found = lookup(tables, name, Vars(**variables), {})
    assert found is not None
    return found


def test_the_most_specific_network_wins_whatever_the_order(tmp_path: Path) -> None:
    config = http(tmp_path, """geo $g { default none; 10.0.0.0/8 ten; 10.1.0.0/16 ten-one; 10.1.2.3 host;
                                        2001:db8::/32 doc6; delete 10.1.0.0/16; 192.0.2.0/24 ""; }""")
    assert value(config, remote_addr="10.1.2.3") == "host"
    assert value(config, remote_addr="10.1.9.9") == "ten"          # 10.1.0.0/16 was deleted
    assert value(config, remote_addr="11.0.0.1") == "none"
    assert value(config, remote_addr="2001:db8::5") == "doc6"
    assert value(config, remote_addr="::ffff:10.1.2.3") == "host"  # a mapped address is looked up as IPv4
    assert value(config, remote_addr="192.0.2.7") == ""
    assert value(config, remote_addr="unix:") == "none"           # 255.255.255.255 finds nothing here


def test_an_address_that_is_none_is_255_255_255_255(tmp_path: Path) -> None:
    config = http(tmp_path, "geo $arg_ip $g { default d; 255.255.255.255 none; 0.0.0.0/0 any; }")
    assert value(config, arg_ip="not an address") == "none"
    assert value(config, arg_ip="192.0.2.1") == "any"


def test_ranges_cut_the_ones_before_them(tmp_path: Path) -> None:
    config = http(tmp_path, """geo $g { ranges; default d;
        10.0.0.0-10.0.0.255 a; 10.0.0.16-10.0.0.31 b; 10.0.0.20-10.0.0.20 c;
        delete 10.0.0.100-10.0.0.255; }""")
    assert [value(config, remote_addr=f"10.0.0.{n}") for n in (0, 15, 16, 20, 21, 31, 32, 99, 100, 255)] == \
        ["a", "a", "b", "c", "b", "b", "a", "a", "d", "d"]
    assert value(config, remote_addr="2001:db8::1") == "d"


def test_proxy_takes_the_address_from_x_forwarded_for(tmp_path: Path) -> None:
    config = http(tmp_path, """geo $g { default d; proxy 127.0.0.1; 127.0.0.0/8 lo; 192.0.2.0/24 test; }
                               geo $r { proxy_recursive; default d; proxy 127.0.0.1; 127.0.0.0/8 lo;
                                        192.0.2.0/24 test; }""")
    assert value(config, remote_addr="127.0.0.1", http_x_forwarded_for="10.0.0.1, 192.0.2.1") == "test"
    assert value(config, remote_addr="127.0.0.1", http_x_forwarded_for="192.0.2.1, 127.0.0.1") == "lo"
    assert value(config, "r", remote_addr="127.0.0.1", http_x_forwarded_for="192.0.2.1, 127.0.0.1") == "test"
    assert value(config, remote_addr="127.0.0.2", http_x_forwarded_for="192.0.2.1") == "lo"   # not trusted


@pytest.mark.parametrize(("blocks", "message"), [
    ("geo $g { 10.0.0.300/8 x; }", 'invalid network "10.0.0.300/8"'),
    ("geo $g { ranges; 10.0.0.9-10.0.0.1 x; }", 'invalid range "10.0.0.9-10.0.0.1"'),
    ("geo $g { 10.0.0.0/8 a b; }", "invalid number of the geo parameters"),
    ("geo g { }", 'invalid variable name "g"'),
    ("map $host $g { } geo $g { }", 'the duplicate "g" variable'),
    ("split_clients $a $g { 60% a; 50% b; }", "percent total is greater than 100%"),
    ("split_clients $a $g { 0% a; }", 'invalid percent value "0%"'),
    ("split_clients $a $g { 1.234% a; }", 'invalid percent value "1.234%"'),
    ("split_clients $a $g { 10 a; }", 'invalid percent value "10"'),
])
def test_nginx_errors(tmp_path: Path, blocks: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        http(tmp_path, blocks)
    assert info.value.message == message


def test_murmur_hash2_is_nginx_s() -> None:
    # ngx_murmur_hash2 (src/core/ngx_murmurhash.c) compiled with gcc gives these: every tail length
    known = {b"": 0, b"1": 1228156847, b"12": 3282964525, b"123": 2461496879, b"1234": 25465593,
             b"12345": 3110510018, b"127.0.0.1AAA": 3053215307, b"sheer": 2714980268}
    assert {data: murmur_hash2(data) for data in known} == known


def test_split_clients_by_percentages(tmp_path: Path) -> None:
    config = http(tmp_path, 'split_clients "${remote_addr}x" $g { 51.2% one; 10% two; * three; }')
    seen = [value(config, remote_addr=f"10.0.{n // 256}.{n % 256}") for n in range(4000)]
    assert 0.47 < seen.count("one") / 4000 < 0.55
    assert 0.08 < seen.count("two") / 4000 < 0.12
    assert seen.count("one") + seen.count("two") + seen.count("three") == 4000
    short = http(tmp_path, "split_clients $remote_addr $g { 50% half; }")     # the rest: ""
    assert {value(short, remote_addr=f"10.0.0.{n}") for n in range(256)} == {"half", ""}
