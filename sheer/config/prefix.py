"""Where relative paths lead: nginx's two prefixes (ngx_process_options, ngx_conf_full_name).

- the **prefix** (`-p`, with a `/` added when missing; without `-p` the current directory, as an nginx
  built without `--prefix`): `-c`, `-e`, `pid`, `error_log`, `access_log`, `load_module` and the
  `*_temp_path`s are relative to it;
- the **configuration prefix**, the directory of the configuration file: `include` is relative to it.

Paths are joined as nginx joins them, by appending, so what sheer prints is what nginx prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

STDERR = "stderr"


def prefix_of(given: str | None) -> str:
    """The prefix, always ending with `/`."""
    if given is None:
        return os.getcwd().rstrip("/") + "/"
    if given and not given.endswith("/"):
        return given + "/"
    return given


def full_name(prefix: str, name: str) -> str:
    """ngx_get_full_name: an absolute name as it is, a relative one appended to the prefix."""
    return name if name.startswith("/") else prefix + name


@dataclass(frozen=True, slots=True)
class Prefixes:
    prefix: str          # ends with "/"
    conf_prefix: str     # the configuration file's directory, ends with "/"
    conf_file: str       # the configuration file's full name

    @classmethod
    def of(cls, conf: str, prefix: str | None = None) -> Prefixes:
        """`-c conf -p prefix` as nginx resolves them."""
        base = prefix_of(prefix)
        conf_file = full_name(base, conf)
        cut = conf_file.rfind("/")
        return cls(base, conf_file[:cut + 1] if cut > 0 else base, conf_file)

    def path(self, name: str) -> str:
        """A path relative to the prefix (`error_log`, `pid`, `access_log`, `-e`); stderr stays stderr."""
        return name if name in (STDERR, "stdout") else full_name(self.prefix, name)

    def conf_path(self, name: str) -> str:
        """A path relative to the configuration's directory (`include`)."""
        return full_name(self.conf_prefix, name)
