"""`sheer -t/-T/-q/-v/-g` as a user runs them: exit codes, nginx's messages, file:line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.io

GOOD = """worker_processes 1;
stream {
    upstream dns_upstreams {
        server 127.0.0.11:53;
        server 127.0.0.12:53;
    }
    server {
        listen 5353 udp;
        proxy_responses 1;
        proxy_timeout 1s;
        proxy_pass dns_upstreams;
    }
}
"""


def sheer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sheer", *args], capture_output=True, text=True,
                          timeout=20, check=False, stdin=subprocess.DEVNULL)


def write(tmp_path: Path, text: str, name: str = "sheer.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("text", "line", "message"), [
    (GOOD.replace("proxy_timeout 1s;", "proxy_timeout 1s;\n        proxy_frobnicate on;"), 11,
     'unknown directive "proxy_frobnicate"'),
    (GOOD.replace("proxy_responses 1;", "proxy_responses many;"), 9,
     '"proxy_responses" takes a non-negative number, got "many"'),
    (GOOD.replace("server 127.0.0.12:53;", "server 127.0.0.12:53;\n        proxy_timeout 1s;"), 6,
     '"proxy_timeout" directive is not allowed here'),
    (GOOD.replace("    }\n}\n", "    }\n"), 12, 'unexpected end of file, expecting "}"'),
])
def test_bad_config(tmp_path: Path, text: str, line: int, message: str) -> None:
    conf = write(tmp_path, text)
    result = sheer("-t", "-c", conf)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"sheer: [emerg] {conf}:{line}: {message}",
        f"sheer: configuration file {conf} test failed",
    ]
    assert "Traceback" not in result.stderr


def test_good_config_prints_nginx_two_lines(tmp_path: Path) -> None:
    conf = write(tmp_path, GOOD)
    result = sheer("-t", "-c", conf)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines() == [
        f"sheer: the configuration file {conf} syntax is ok",
        f"sheer: configuration file {conf} test is successful",
    ]


def test_quiet(tmp_path: Path) -> None:
    result = sheer("-t", "-q", "-c", write(tmp_path, GOOD))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    bad = sheer("-t", "-q", "-c", write(tmp_path, "stream { bogus; }", "bad.conf"))
    assert bad.returncode == 1 and 'unknown directive "bogus"' in bad.stderr


DSR = """stream {
    upstream dns { METHOD server 172.16.0.11:53; server 172.16.0.12:53; }
    server {
        listen 53 udp;
        proxy_responses 0;
        proxy_bind $remote_addr:$remote_port transparent;
        dsr_without_health_check on;
        proxy_pass dns;
    }
}
"""


@pytest.mark.parametrize(("method", "why"), [
    ("least_conn;", "least_conn compares active connections, and the kernel keeps no count of them"),
    ("random two;", "random two compares the load of two servers"),
    ("hash $remote_addr;", "hash KEY is nginx's crc32"),
    ("", None),
    ("hash $remote_addr maglev;", None),
    ("random;", None),
])
def test_dsr_methods_the_kernel_cannot_run_say_so(tmp_path: Path, method: str, why: str | None) -> None:
    conf = write(tmp_path, DSR.replace("METHOD", method))
    result = sheer("-t", "-c", conf)
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "[notice]" in line]
    if why is None:
        assert notices == []
    else:
        assert len(notices) == 1, notices
        assert notices[0].startswith(f"sheer: [notice] {conf}:3: direct server return on 0.0.0.0:53 udp "
                                     'stays on the user-space path (no kernel fast path for upstream "dns"): '
                                     f"{why}")


def test_dump_prints_every_file(tmp_path: Path) -> None:
    upstreams = write(tmp_path, "upstream u { server 127.0.0.11:53; }\n", "upstreams.conf")
    conf = write(tmp_path,
                 "stream {\n    include upstreams.conf;\n    server { listen 5353 udp; proxy_pass u; }\n}\n")
    result = sheer("-T", "-c", conf)
    assert result.returncode == 0
    assert result.stdout == (f"# configuration file {conf}:\n{Path(conf).read_text()}\n"
                             f"# configuration file {upstreams}:\n{Path(upstreams).read_text()}\n")
    assert "test is successful" in result.stderr


def test_version() -> None:
    result = sheer("-v")
    assert result.returncode == 0
    assert result.stderr.startswith("sheer version: sheer/")
    build = sheer("-V")
    assert build.returncode == 0 and "built with Python" in build.stderr


def test_global_directives_are_checked(tmp_path: Path) -> None:
    conf = write(tmp_path, GOOD.replace("worker_processes 1;\n", ""))
    assert sheer("-t", "-q", "-c", conf, "-g", "worker_processes 2;").returncode == 0
    bad = sheer("-t", "-c", conf, "-g", "worker_processes two;")
    assert bad.returncode == 1
    assert "-g:1: " in bad.stderr and "Traceback" not in bad.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = sheer("-t", "-c", str(tmp_path / "nope.conf"))
    assert result.returncode == 1
    assert f'open() "{tmp_path / "nope.conf"}" failed (2: No such file or directory)' in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_log_directory_fails_the_test(tmp_path: Path) -> None:
    conf = write(tmp_path, "error_log missing/dir/error.log;\n" + GOOD)
    result = sheer("-t", "-c", conf)
    assert result.returncode == 1
    assert f'open() "{tmp_path}/missing/dir/error.log" failed (2: No such file or directory)' in result.stderr


def test_signal_without_pid_directive(tmp_path: Path) -> None:
    result = sheer("-s", "reload", "-c", write(tmp_path, GOOD))
    assert result.returncode == 1
    assert 'no "pid" directive' in result.stderr


def test_signal_with_stale_pid_file(tmp_path: Path) -> None:
    conf = write(tmp_path, f"pid {tmp_path}/sheer.pid;\n" + GOOD)
    (tmp_path / "sheer.pid").write_text("not a pid\n")
    result = sheer("-s", "stop", "-c", conf)
    assert result.returncode == 1 and "is sheer running?" in result.stderr
    assert "Traceback" not in result.stderr
