"""nginx's test harness drives sheer with its own command lines (lib/Test/Nginx.pm): started from
elsewhere as `sheer -p DIR/ -c nginx.conf -e error.log`, found through DIR/nginx.pid, reloaded and
stopped by `-s` through the same configuration's pid."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sheer_process import alive, children_of, free_port, wait_for

pytestmark = pytest.mark.io


def sheer(*args: str, cwd: str = "/") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sheer", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=20, check=False, stdin=subprocess.DEVNULL)


def conf(port: int, answer: str, globals_: bool = True) -> str:
    """What a Test::Nginx test writes, %%TEST_GLOBALS%% expanded or not."""
    head = "pid %%TESTDIR%%/nginx.pid;\nerror_log %%TESTDIR%%/error.log debug;\n" if globals_ else ""
    return head + f"""daemon off;
events {{ }}
http {{
    access_log %%TESTDIR%%/access.log;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "{answer}"; }}
    }}
}}
"""


def get(port: int) -> str:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        client.request("GET", "/")
        return client.getresponse().read().decode()
    finally:
        client.close()


class Harness:
    """A Test::Nginx-like directory, and the masters started in it (stopped by PID afterwards)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.masters: list[subprocess.Popen[bytes]] = []

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        """exec($NGINX, '-p', "$testdir/", '-c', 'nginx.conf', '-e', 'error.log', @globals), from `/`."""
        master = subprocess.Popen([sys.executable, "-m", "sheer", "-p", f"{self.dir}/", "-c", "nginx.conf",
                                   "-e", "error.log", *extra], cwd="/", stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.masters.append(master)
        pid_file = self.dir / "nginx.pid"
        wait_for(lambda: pid_file.exists() or master.poll() is not None, 10, "nginx.pid")
        assert master.poll() is None, master.stderr.read().decode() if master.stderr else ""
        return master

    def stop(self) -> None:
        for master in self.masters:
            workers = children_of(master.pid)
            if master.poll() is None:
                master.send_signal(signal.SIGTERM)
                try:
                    master.wait(10)
                except subprocess.TimeoutExpired:
                    master.kill()
                    master.wait(5)
            for pid in workers:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture(name="harness")
def harness_fixture(tmp_path: Path) -> Iterator[Harness]:
    directory = tmp_path / "nginx-test-X"
    directory.mkdir()
    harness = Harness(directory)
    try:
        yield harness
    finally:
        harness.stop()


def test_test_nginx_lifecycle(harness: Harness) -> None:
    testdir = harness.dir
    port = free_port()
    (testdir / "nginx.conf").write_text(conf(port, "one").replace("%%TESTDIR%%", str(testdir)))
    master = harness.start()
    assert int((testdir / "nginx.pid").read_text()) == master.pid
    wait_for(lambda: _answers(port), 10, "the listener")
    assert get(port) == "one"
    assert (testdir / "access.log").exists()

    # reload and stop through the pid of the configuration, with relative -c and prefix without "/"
    (testdir / "nginx.conf").write_text(conf(port, "two").replace("%%TESTDIR%%", str(testdir)))
    assert sheer("-p", str(testdir), "-c", "nginx.conf", "-s", "reload").returncode == 0
    wait_for(lambda: _answers(port) == "two", 10, "the reloaded configuration")
    quit_ = sheer("-p", str(testdir), "-c", "nginx.conf", "-e", "error.log", "-s", "quit")
    assert quit_.returncode == 0, quit_.stderr
    assert master.wait(15) == 0
    assert not (testdir / "nginx.pid").exists()
    log = (testdir / "error.log").read_text()
    assert "[alert]" not in log and "reconfiguring" in log


def test_globals_on_the_command_line(harness: Harness) -> None:
    """A test whose configuration has no %%TEST_GLOBALS%%: pid and error_log come with -g."""
    testdir = harness.dir
    port = free_port()
    (testdir / "nginx.conf").write_text(conf(port, "g", globals_=False).replace("%%TESTDIR%%", str(testdir)))
    master = harness.start("-g", f"pid {testdir}/nginx.pid; error_log {testdir}/error.log debug;")
    wait_for(lambda: _answers(port), 10, "the listener")
    assert get(port) == "g"
    master.send_signal(signal.SIGQUIT)
    assert master.wait(15) == 0


def test_minus_e_takes_the_errors_of_a_bad_configuration(tmp_path: Path) -> None:
    testdir = tmp_path
    (testdir / "nginx.conf").write_text("events { }\nhttp { frobnicate on; }\n")
    result = sheer("-t", "-p", f"{testdir}/", "-c", "nginx.conf", "-e", "error.log")
    assert result.returncode == 1
    emerg = f'{testdir}/nginx.conf:2: unknown directive "frobnicate"'
    assert f"sheer: [emerg] {emerg}" in result.stderr
    assert f"configuration file {testdir}/nginx.conf test failed" in result.stderr
    assert emerg in (testdir / "error.log").read_text()


def test_relative_configuration_is_not_looked_for_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("events { }\n")
    result = sheer("-t", "-p", "/nonexistent/", "-c", "nginx.conf", cwd=str(tmp_path))
    assert result.returncode == 1
    assert 'open() "/nonexistent/nginx.conf" failed (2: No such file or directory)' in result.stderr
    here = sheer("-t", "-c", "nginx.conf", cwd=str(tmp_path))   # no -p: the current directory
    assert f'{tmp_path}/nginx.conf: no "http" or "stream" block' in here.stderr


def test_bad_options_get_nginx_words() -> None:
    for argv, message in ((["-x"], 'invalid option: "x"'), (["-c"], 'option "-c" requires file name'),
                          (["-s", "restart"], 'invalid option: "-s restart"'), (["lb.conf"],
                                                                              'invalid option: "lb.conf"')):
        result = sheer(*argv)
        assert (result.returncode, result.stderr) == (1, f"sheer: {message}\n")


def _answers(port: int) -> str:
    try:
        return get(port)
    except OSError:
        return ""


STOCK_NGINX_CONF = Path("/etc/nginx/nginx.conf")
STOCK_MD5 = "e5398edc0b51497dba606859fb13a86e"     # nginx-common 1.22.1's conffile, as Debian ships it


def _is_stock() -> bool:
    import hashlib
    return STOCK_NGINX_CONF.exists() and hashlib.md5(STOCK_NGINX_CONF.read_bytes()).hexdigest() == STOCK_MD5


@pytest.mark.skipif(not _is_stock() or os.geteuid() != 0,
                    reason="Debian's stock /etc/nginx/nginx.conf, checked as root (its user, its logs)")
def test_debian_stock_configuration_passes_the_test() -> None:
    result = sheer("-t", "-c", str(STOCK_NGINX_CONF))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == f"sheer: configuration file {STOCK_NGINX_CONF} test is successful"
    assert not any('"gzip"' in line for line in lines)       # gzip compresses (issue 13g)
    assert not any('location "/"' in line for line in lines)       # its files are served


def test_notices_and_warnings_of_minus_t(tmp_path: Path) -> None:
    conf = tmp_path / "lb.conf"
    conf.write_text("load_module modules/ngx_mail_module.so;\nhttp {\n    sendfile off;\n    gzip on;\n"
                    "    server { listen 127.0.0.1:1; location / { return 204; } }\n}\n")
    said = sheer("-t", "-c", str(conf)).stderr.splitlines()
    assert sorted(said[:2]) == [
        (f'sheer: [notice] {conf}:3: "sendfile": sheer sends files with sendfile() where it can: '
        '"off" changes nothing'),
        (f'sheer: [warn] {conf}:1: "load_module": sheer does not have ngx_mail_module: nothing is loaded, '
         "and a directive of that module is an error")]
    said = [said[1], said[0]] if "[warn]" in said[0] else said        # the warning second, as below
    quiet = sheer("-t", "-q", "-c", str(conf))
    assert (quiet.returncode, quiet.stderr.splitlines()) == (0, [said[1]])
