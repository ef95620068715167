"""Variables rendered by sheer.core.variables."""

from __future__ import annotations

from sheer.config.template import Template, Var
from sheer.core.variables import MappingSource, binary_address, render_bytes


def test_binary_remote_addr_is_the_address_bytes() -> None:
    template = Template((Var("binary_remote_addr"),), "$binary_remote_addr")
    assert render_bytes(template, MappingSource({"binary_remote_addr": binary_address("192.168.99.1")})) == \
        bytes([192, 168, 99, 1])
    assert len(binary_address("2001:db8::1")) == 16
