"""nftables commands from Python: libnftables (the library `nft` itself is built on) through ctypes,
in-process, or the `nft` program when the library cannot be loaded.

In-process matters to the fast path's feeder: it runs in sheer's health checker after that
process dropped to `user` keeping CAP_NET_ADMIN, and an exec'd `nft` would not inherit the
capability (only ambient capabilities survive execve); it also spares a fork and exec for every
table update and every counter read.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
from dataclasses import dataclass
from typing import Any

_JSON = 1 << 4            # NFT_CTX_OUTPUT_JSON
_STATELESS = 1 << 2       # NFT_CTX_OUTPUT_STATELESS
_TERSE = 1 << 11          # NFT_CTX_OUTPUT_TERSE: no set elements


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    out: str
    err: str

    def first_error(self) -> str:
        lines = [line for line in self.err.splitlines() if line.startswith("Error")]
        return lines[0] if lines else (self.err.strip().splitlines() or [""])[0]


class Nft:
    """One libnftables context (or the `nft` program); `run()` executes a script as one transaction."""

    def __init__(self) -> None:
        self._lib: Any = None
        self._ctx: Any = None
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            return
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for fn in ("nft_ctx_buffer_output", "nft_ctx_buffer_error", "nft_ctx_free"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        for fn in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, fn).restype = ctypes.c_char_p
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            return
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self._lib, self._ctx = lib, ctx

    def close(self) -> None:
        if self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def run(self, script: str, *, json_out: bool = False, stateless: bool = False,
            terse: bool = False) -> Result:
        flags = (_JSON if json_out else 0) | (_STATELESS if stateless else 0) | (_TERSE if terse else 0)
        if not self._ctx:
            args = ["nft", *(["-j"] if json_out else []), *(["-s"] if stateless else []),
                    *(["-t"] if terse else []), "-f", "-"]
            try:
                res = subprocess.run(args, input=script, capture_output=True, text=True, check=False)
            except FileNotFoundError:
                return Result(False, "", "Error: nft is not installed (Debian: apt-get install nftables)")
            return Result(res.returncode == 0, res.stdout, res.stderr)
        lib, ctx = self._lib, self._ctx
        lib.nft_ctx_output_set_flags(ctx, flags)
        rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        return Result(rc == 0, out, err)

    def json(self, command: str) -> list[dict[str, Any]]:
        """A `list ...` command's objects (`nft -j`), [] when it failed (absent, no permission).
        Read through a context of its own: libnftables caches what it listed until the ruleset's
        generation changes, and a counter's values change without one."""
        fresh = Nft() if self._ctx else self
        try:
            res = fresh.run(command, json_out=True)
        finally:
            if fresh is not self:
                fresh.close()
        if not res.ok or not res.out.strip():
            return []
        objects: list[dict[str, Any]] = json.loads(res.out).get("nftables", [])
        return objects
