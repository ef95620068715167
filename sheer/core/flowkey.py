"""What `hash KEY maglev` hashes: for the keys a kernel can compute too (`$remote_addr`,
`$remote_addr$remote_port`, `$remote_addr:$remote_port`), the client's binary address and port
as nft's registers hold them (sheer.core.jhash.flow_key), so the user-space balancer and the
kernel's fast path (`jhash ip saddr . udp sport`) land on the same slot; any other key is hashed
as its rendered text, in user space only."""

from __future__ import annotations

from typing import Literal

from sheer.config.template import Template, Var
from sheer.core.jhash import address_key
from sheer.core.variables import VariableSource, render

Shape = Literal["addr", "addr_port"]


def key_shape(key: Template | None) -> Shape | None:
    """"addr" for `$remote_addr`, "addr_port" for `$remote_addr$remote_port` (a literal between
    the two, such as ":", adds nothing to hash), None for anything else."""
    if key is None:
        return None
    parts = key.parts
    if parts == (Var("remote_addr"),):
        return "addr"
    ends = len(parts) in (2, 3) and parts[0] == Var("remote_addr") and parts[-1] == Var("remote_port")
    if ends and (len(parts) == 2 or isinstance(parts[1], str)):
        return "addr_port"
    return None


def maglev_key(key: Template, variables: VariableSource) -> bytes:
    shape = key_shape(key)
    if shape == "addr":
        return address_key(variables.variable("remote_addr"))
    if shape == "addr_port":
        port = variables.variable("remote_port")
        return address_key(variables.variable("remote_addr"), int(port) if port.isdigit() else 0)
    return render(key, variables).encode("latin-1", "replace")
