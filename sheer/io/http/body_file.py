"""What the proxy waits for of a request body before it goes upstream (proxy_request_buffering), and
what $request_body and $request_body_file show of it (sheer/config/request_body.py).

nginx keeps a body up to client_body_buffer_size in memory and writes a larger one (or any one, with
client_body_in_file_only) to a file in client_body_temp_path; sheer keeps bodies in memory and writes
that file only when $request_body_file is read, removing it when the request ends unless
client_body_in_file_only is "on"."""

from __future__ import annotations

import itertools
import os

from sheer.config.request_body import RequestBodyConfig
from sheer.core.http.variables import RequestVariables
from sheer.core.http.verdict import Rejected
from sheer.io.http.body import RequestBody

_NUMBERS = itertools.count(os.getpid() * 1000)


class BodyFile:
    """$request_body_file of one request: the file's name once written."""

    __slots__ = ("always", "body", "config", "name")

    def __init__(self, body: RequestBody, config: RequestBodyConfig) -> None:
        self.body = body
        self.config = config
        self.always = config.in_file_only != "off"   # else only a body larger than the memory buffer
        self.name = ""

    def __call__(self) -> str:
        if self.name:
            return self.name
        body = self.body
        if not self.always and body.size <= self.config.buffer_size:
            return ""
        data = body.whole()
        if data is None:     # streamed on (larger than sheer keeps), or not complete
            return ""
        try:
            self.name = _write(self.config.temp_path, data)
        except OSError:
            return ""
        return self.name

    def remove(self) -> None:
        """The request ended: the file goes, unless client_body_in_file_only on keeps it."""
        if self.name and self.config.in_file_only != "on":
            try:
                os.unlink(self.name)
            except OSError:
                pass      # removed already (a second end: the answer, then the connection's close)


def _write(path: str, data: bytes) -> str:
    """A new file in `path` (made when missing) named as nginx names its temporary files."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    while True:
        name = f"{path.rstrip('/')}/{next(_NUMBERS) % 10**10:010d}"
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return name


async def before_upstream(body: RequestBody, variables: RequestVariables, config: RequestBodyConfig,
                          version: bytes) -> tuple[Rejected | None, BodyFile | None]:
    """Waits for what nginx would have read before connecting: the whole body (sheer: up to 64 KiB,
    then it streams) with proxy_request_buffering on, nothing with it off (but all of a chunked body
    sent as HTTP/1.0, whose length must come first). A broken body's answer, and the body's file."""
    body.keep = config.buffer_size
    whole = body.chunked and version == b"1.0"
    buffering = config.buffering or whole      # nginx buffers such a body whatever the directive says
    if buffering:
        await body.ready(whole=whole)
    if body.failed is not None:
        return body.failed, None
    if not buffering:
        variables.body = body.held       # in unbuffered mode nginx writes no file
        return None, None
    file = BodyFile(body, config)
    variables.body_file = file
    if not file.always:
        variables.body = body.held
    return None, file
