"""Every directive of the table, given hostile values, is accepted or refused with nginx's kind of `-t`
message naming file:line: never another exception (a traceback), never a hang."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import crossplane  # type: ignore[import-untyped]
import pytest

from sheer.config import ConfigError, lexfix, load
from sheer.config import table as t
from sheer.config.directives import TABLE

# The smallest configuration around a directive of each context; {D} is where it goes.
AROUND = {
    t.MAIN: "{D}\nhttp {{ server {{ listen 127.0.0.1:1000; }} }}\n",
    t.EVENTS: "events {{\n{D}\n}}\nhttp {{ server {{ listen 127.0.0.1:1000; }} }}\n",
    t.HTTP: "http {{\n{D}\nserver {{ listen 127.0.0.1:1000; }} }}\n",
    t.HTTP_SERVER: "http {{ server {{ listen 127.0.0.1:1001;\n{D}\n}} }}\n",
    t.HTTP_LOCATION: "http {{ server {{ listen 127.0.0.1:1000; location / {{\n{D}\n}} }} }}\n",
    t.HTTP_UPSTREAM: ("http {{ upstream u {{ server 127.0.0.1:1;\n{D}\n}} server {{ listen 127.0.0.1:1000; "
                      "location / {{ proxy_pass http://u; }} }} }}\n"),
    t.HTTP_IF: "http {{ server {{ listen 127.0.0.1:1000; if ($arg_a) {{\n{D}\n}} }} }}\n",
    t.HTTP_LIF: "http {{ server {{ listen 127.0.0.1:1000; location / {{ if ($arg_a) {{\n{D}\n}} }} }} }}\n",
    t.HTTP_LMT: ("http {{ server {{ listen 127.0.0.1:1000; location / {{ limit_except GET {{\n{D}\n}} }} }} "
                 "}}\n"),
    t.STREAM: "stream {{\n{D}\nserver {{ listen 127.0.0.1:1000; proxy_pass 127.0.0.1:1; }} }}\n",
    t.STREAM_SERVER: "stream {{ server {{ listen 127.0.0.1:1000; proxy_pass 127.0.0.1:1;\n{D}\n}} }}\n",
    t.STREAM_UPSTREAM: ("stream {{ upstream u {{ server 127.0.0.1:1;\n{D}\n}} "
                        "server {{ listen 127.0.0.1:1000; proxy_pass u; }} }}\n"),
}

# Values a careless or hostile configuration gives: out of range, half-written, of the wrong kind.
HOSTILE = ["x", "-1", "0", "99999999999999999999999", "1k1", "on", "$", "${", "$a$", "(", "[", "*", '""',
           "1.5", "unix:", "127.0.0.1:99999", "[::1", "~(", "=", "1e9", "0x10", "%", "default", "a=", "=1",
           "-", "0s", "1y", "999999999999d", "127.0.0.1/33", "::/200", "off", "\\\\", "abc$", "a:b:c", "https://",
           "http://[", "ssl"]


def _cases() -> Iterator[tuple[str, str, int]]:
    for entry in TABLE:
        if entry.block is not None or entry.todo is not None:
            continue
        contexts = sorted(c for c in entry.contexts if c in AROUND)
        if not contexts:
            continue
        low, high = entry.nargs
        counts = {low, max(low, 1) if high != 0 else 0}
        if high is None or high > low:
            counts.add(low + 1)
        for count in sorted(counts):
            yield entry.name, contexts[0], count


@pytest.mark.parametrize(("name", "context", "count"), list(_cases()))
def test_hostile_values_are_refused_with_file_and_line_or_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, context: str, count: int) -> None:
    monkeypatch.chdir(tmp_path)       # a relative path a value names stays in here
    path = tmp_path / "sheer.conf"

    def hung(*_: object) -> None:
        raise AssertionError(f"loading took over 5 s: {path.read_text()}")

    previous = signal.signal(signal.SIGALRM, hung)
    try:
        for value in HOSTILE:
            line = f"{name} {' '.join([value] * count)};" if count else f"{name};"
            path.write_text(AROUND[context].format(D=line))
            signal.alarm(5)
            try:
                load(str(path))
            except ConfigError as error:
                assert error.source is not None, f"{line!r}: {error} (no file:line)"
                assert error.source.file == str(path), f"{line!r}: {error}"
                # the line of the directive, or a later one whose meaning it changed (never line 0)
                assert error.source.line >= 1, f"{line!r}: {error}"
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_an_empty_name_is_a_host_not_found(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text(AROUND[t.HTTP].format(D='set_real_ip_from "";'))
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert info.value.message == 'host not found in set_real_ip_from ""'
    assert info.value.source is not None and info.value.source.line == 2


def test_a_device_given_as_the_configuration_ends_at_its_first_nul(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load("/dev/zero")
    assert str(info.value) == "/dev/zero:1: unexpected NUL byte"


def test_an_include_of_a_device_ends_at_its_first_nul(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("events {}\ninclude /dev/zero;\n")
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert str(info.value) == "/dev/zero:1: unexpected NUL byte"


def test_endless_text_is_read_no_further_than_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    class Endless:
        name, served = "pipe", 0

        def read(self, size: int) -> str:
            self.served += size
            return "# x\n" * (size // 4)

    monkeypatch.setattr(lexfix, "MAX_FILE", 1 << 20)
    endless = Endless()
    with pytest.raises(crossplane.errors.NgxParserSyntaxError) as info:
        list(lexfix.bounded(endless))
    assert info.value.strerror == "file is larger than 1 MiB: not a configuration"
    assert info.value.lineno == (1 << 20) // 4 + 1      # the line where the bound was crossed
    assert endless.served <= (1 << 20) + (1 << 16)
