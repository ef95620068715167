"""Where a URI is on disk (ngx_http_map_uri_to_path), and what keeps a request under its root.

The URI is nginx's normalized $uri (sheer.core.http.uri.parse_uri): percent-decoded (%2F is a "/"),
"." and ".." segments resolved, a ".." above "/" and a %00 already answered 400. What is left to check
is what the configuration adds: `alias` replaces the location prefix with a directory, so
`location /img { alias /data/img/; }` would map `/img../secret` to `/data/img/../secret`. nginx
follows that; sheer refuses any path whose part after the root has a ".." segment, or a NUL."""

from __future__ import annotations

from dataclasses import dataclass

from sheer.config.static import REGEX_ALIAS


@dataclass(frozen=True, slots=True)
class Mapped:
    path: str          # the file's full name
    root_length: int   # how much of it is the root (or alias): path[root_length:] is what the URI added


def map_uri(root: str, alias: int, uri: str, add_uri_to_alias: bool = False) -> Mapped:
    """`root` rendered (absolute); `alias` is 0 for `root`, the length of the location prefix an `alias`
    replaces, or REGEX_ALIAS (the alias of a regex location is the whole path, unless try_files found
    a file under it: then the URI is appended)."""
    if alias == REGEX_ALIAS:
        return Mapped(root + uri if add_uri_to_alias else root, len(root))
    return Mapped(root + uri[alias:], len(root))


def escapes_root(mapped: Mapped) -> bool:
    """True when the part the URI added could leave the root: a ".." segment, or a NUL byte."""
    added = mapped.path[mapped.root_length:]
    if "\0" in mapped.path:
        return True
    return ".." in added.split("/")


def try_path(root: str, alias: int, uri: str, name: str, literal: bool) -> Mapped:
    """The path try_files tests for `name` (rendered), as ngx_http_try_files_handler: the root (or the
    alias directory) and the name; with an `alias` of a prefix location, a name made from variables
    that starts with that prefix has it cut off first."""
    if alias > 0 and not literal and name.startswith(uri[:alias]):
        name = name[alias:]
    return Mapped(root + name, len(root))


def directory_location(uri: str, args: str) -> str:
    """The Location of the 301 for a directory asked without its trailing slash (the URI escaped as
    nginx's NGX_ESCAPE_URI, then "/", then the arguments)."""
    return escape_uri(uri) + "/" + (f"?{args}" if args else "")


def escape_uri(uri: str) -> str:
    """nginx's ngx_escape_uri(NGX_ESCAPE_URI): controls, space, "#", "%", "?" and non-ASCII as %XX."""
    return "".join(ch if _plain(ch) else "".join(f"%{b:02X}" for b in ch.encode("latin-1", "replace"))
                   for ch in uri)


def _plain(ch: str) -> bool:
    return 0x20 < ord(ch) < 0x7F and ch not in "#%?"
