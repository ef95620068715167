"""proxy_bind rendered per client (sheer/core/bind.py): canonical hosts, ports, nginx's errors."""

from __future__ import annotations

import pytest

from sheer.config.errors import Source
from sheer.config.model import ProxyBind
from sheer.config.template import STREAM_VARIABLES, compile_template
from sheer.core.bind import BindTo, BindValueError, bind_to


class Client:
    def __init__(self, addr: str, port: str = "4711") -> None:
        self.values = {"remote_addr": addr, "remote_port": port}

    def variable(self, name: str) -> str:
        return self.values.get(name, "")


def bind(text: str, transparent: bool = True) -> ProxyBind:
    return ProxyBind(compile_template(text, Source("t.conf", 1), STREAM_VARIABLES), transparent)


@pytest.mark.parametrize(("template", "addr", "expected"), [
    ("$remote_addr", "192.0.2.7", BindTo("192.0.2.7", 0, True)),
    ("$remote_addr:$remote_port", "192.0.2.7", BindTo("192.0.2.7", 4711, True)),
    ("$remote_addr", "2001:DB8:0:0::1", BindTo("2001:db8::1", 0, True)),      # canonical form
    ("[$remote_addr]:$remote_port", "2001:db8::1", BindTo("2001:db8::1", 4711, True)),
    ("198.51.100.1", "192.0.2.7", BindTo("198.51.100.1", 0, True)),
])
def test_renders_the_clients_address(template: str, addr: str, expected: BindTo) -> None:
    assert bind_to(bind(template), Client(addr)) == expected
    assert bind_to(bind(template), Client(addr)) == expected      # again: from the cache


def test_empty_means_no_bind() -> None:
    assert bind_to(bind("$remote_addr"), Client("")) is None
    assert bind_to(None, Client("192.0.2.7")) is None


@pytest.mark.parametrize(("addr", "port", "message"), [
    ("not-an-address", "4711", 'invalid local address "not-an-address:4711"'),
    ("192.0.2.7", "70000", 'invalid port in local address "192.0.2.7:70000"'),
])
def test_bad_values_are_refused_every_time(addr: str, port: str, message: str) -> None:
    for _ in range(2):       # errors are not cached away
        with pytest.raises(BindValueError, match=message):
            bind_to(bind("$remote_addr:$remote_port"), Client(addr, port))
