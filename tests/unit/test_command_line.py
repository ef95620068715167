"""nginx's command line: the flags as ngx_get_options reads them, the paths as ngx_process_options and
ngx_conf_full_name resolve them (so Test::Nginx's `nginx -p DIR/ -c nginx.conf -e error.log` works)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sheer.cli.options import OptionError, Options, parse
from sheer.config import ConfigError, load
from sheer.config.prefix import Prefixes, prefix_of

SERVE = "stream { server { listen 127.0.0.1:1000; return x; } }\n"


# --- the flags --------------------------------------------------------------------------------

def test_test_nginx_command_line() -> None:
    options = parse(["-p", "/tmp/nginx-test-X/", "-c", "nginx.conf", "-e", "error.log"])
    assert options.prefix == "/tmp/nginx-test-X/"
    assert (options.conf, options.error_log) == ("nginx.conf", "error.log")
    assert not options.test and options.signal is None


def test_values_attached_and_flags_joined() -> None:
    options = parse(["-tq", "-p/srv/", "-cnginx.conf", "-gdaemon off;", "-sreload"])
    assert options == Options(prefix="/srv/", conf="nginx.conf", directives="daemon off;", signal="reload",
                              test=True, quiet=True)
    assert parse(["-T"]).test and parse(["-T"]).dump
    assert parse(["-V"]).version and parse(["-V"]).build


def test_the_last_value_wins() -> None:
    assert parse(["-c", "a.conf", "-c", "b.conf"]).conf == "b.conf"


def test_a_flag_after_a_value_taking_flag_in_one_word_is_its_value() -> None:
    # nginx: `-pt` is the prefix "t", not -p followed by -t
    options = parse(["-pt"])
    assert options.prefix == "t" and not options.test


@pytest.mark.parametrize(("argv", "message"), [
    (["nginx.conf"], 'invalid option: "nginx.conf"'),
    (["-x"], 'invalid option: "x"'),
    (["-tx"], 'invalid option: "x"'),
    (["-p"], 'option "-p" requires directory name'),
    (["-c"], 'option "-c" requires file name'),
    (["-e"], 'option "-e" requires file name'),
    (["-g"], 'option "-g" requires parameter'),
    (["-s"], 'option "-s" requires parameter'),
    (["-s", "restart"], 'invalid option: "-s restart"'),
])
def test_nginx_refusals(argv: list[str], message: str) -> None:
    with pytest.raises(OptionError) as info:
        parse(argv)
    assert str(info.value) == message


# --- the prefixes -----------------------------------------------------------------------------

def test_prefix_gets_its_slash_and_defaults_to_the_current_directory() -> None:
    assert prefix_of("/srv/lb") == "/srv/lb/"
    assert prefix_of("/srv/lb/") == "/srv/lb/"
    assert prefix_of(None) == os.getcwd().rstrip("/") + "/"


def test_relative_conf_is_relative_to_the_prefix() -> None:
    where = Prefixes.of("nginx.conf", "/tmp/t")
    assert where.conf_file == "/tmp/t/nginx.conf"
    assert where.conf_prefix == "/tmp/t/"
    nested = Prefixes.of("conf/lb.conf", "/srv/")
    assert (nested.conf_file, nested.conf_prefix) == ("/srv/conf/lb.conf", "/srv/conf/")
    absolute = Prefixes.of("/etc/sheer/sheer.conf", "/srv/")
    assert (absolute.conf_file, absolute.conf_prefix) == ("/etc/sheer/sheer.conf", "/etc/sheer/")
    assert absolute.path("logs/error.log") == "/srv/logs/error.log"
    assert absolute.conf_path("servers.conf") == "/etc/sheer/servers.conf"
    assert absolute.path("stderr") == "stderr" and absolute.path("/var/log/x") == "/var/log/x"


def test_load_reads_the_file_under_the_prefix_not_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(SERVE)
    config = load("nginx.conf", prefix=f"{tmp_path}/")
    assert config.file == f"{tmp_path}/nginx.conf"
    with pytest.raises(ConfigError) as info:
        load("nginx.conf", prefix=f"{tmp_path}/elsewhere")
    missing = f"{tmp_path}/elsewhere/nginx.conf"
    assert str(info.value) == f'open() "{missing}" failed (2: No such file or directory)'


def test_paths_of_the_configuration_follow_the_prefix_and_include_the_configuration_directory(
        tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "servers.conf").write_text(
        "server { listen 127.0.0.1:1000; return x; access_log logs/stream.log basic; }\n")
    (conf_dir / "lb.conf").write_text(
        "pid run/sheer.pid;\nerror_log logs/error.log info;\n"
        "stream { log_format basic $remote_addr; include servers.conf; }\n")
    config = load(str(conf_dir / "lb.conf"), prefix=str(tmp_path / "var"))
    assert config.pid == f"{tmp_path}/var/run/sheer.pid"
    assert config.error_log.path == f"{tmp_path}/var/logs/error.log"
    assert config.stream is not None
    assert config.stream.servers[0].access_logs[0].path == f"{tmp_path}/var/logs/stream.log"
    assert config.files == (f"{conf_dir}/lb.conf", f"{conf_dir}/servers.conf")


def test_include_is_relative_to_the_configuration_directory(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "main.inc").write_text("worker_processes 3;\n")
    (tmp_path / "conf" / "lb.conf").write_text("include main.inc;\n" + SERVE)
    config = load("conf/lb.conf", prefix=str(tmp_path))
    assert config.worker_processes == 3
    assert config.files == (f"{tmp_path}/conf/lb.conf", f"{tmp_path}/conf/main.inc")


def test_minus_e_is_the_error_log_when_main_sets_none(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(SERVE)
    config = load("nginx.conf", prefix=str(tmp_path), error_log="error.log")
    assert (config.error_log.path, config.error_log.level) == (f"{tmp_path}/error.log", "error")
    assert load("nginx.conf", prefix=str(tmp_path), error_log="stderr").error_log.path == "stderr"
    assert load("nginx.conf", prefix=str(tmp_path)).error_log.path == "stderr"


def test_the_configuration_error_log_wins_over_minus_e(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("error_log stderr warn;\n" + SERVE)
    config = load("nginx.conf", prefix=str(tmp_path), error_log="error.log")
    assert (config.error_log.path, config.error_log.level) == ("stderr", "warn")


def test_minus_g_is_read_before_the_file(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("pid other.pid;\n" + SERVE)
    with pytest.raises(ConfigError) as info:
        load("nginx.conf", prefix=str(tmp_path), global_directives=f"pid {tmp_path}/nginx.pid;")
    # the file's line is the duplicate, as nginx says it: -g came first
    assert str(info.value) == f'{tmp_path}/nginx.conf:1: "pid" directive is duplicate'
    config = load("nginx.conf", prefix=str(tmp_path), global_directives="worker_processes 2;")
    assert config.worker_processes == 2 and config.pid == f"{tmp_path}/other.pid"
