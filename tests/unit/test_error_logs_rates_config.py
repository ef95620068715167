"""`error_log` given several times (files, stderr, syslog:), and the rate limit directives, as `nginx -t`
reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import Config, Syslog
from sheer.config.template import Template


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "sheer.conf"
    path.write_text(text)
    return load(str(path), prefix=str(tmp_path))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


STREAM = "stream {{ server {{ listen 127.0.0.1:9000; proxy_pass 127.0.0.1:9001; {} }} }}\n"


def test_several_error_logs_in_one_context(tmp_path: Path) -> None:
    config = load_text(tmp_path, "error_log a.log info;\nerror_log b.log;\n"
                                 "error_log syslog:server=127.0.0.1:5514,tag=lb,facility=daemon notice;\n"
                       + STREAM.format("error_log s.log debug; error_log stderr emerg;"))
    main = config.error_log
    assert (main.path, main.level) == (str(tmp_path / "a.log"), "info")
    assert [(log.path, log.level) for log in main.also] == [
        (str(tmp_path / "b.log"), "error"), ("syslog:server=127.0.0.1:5514,tag=lb,facility=daemon", "notice")]
    assert main.also[1].syslog == Syslog("127.0.0.1", 5514, 3, "lb", True)
    assert config.stream is not None
    server_log = config.stream.servers[0].error_log
    assert server_log is not None
    assert [(log.path, log.level) for log in (server_log, *server_log.also)] == [
        (str(tmp_path / "s.log"), "debug"), ("stderr", "emerg")]


def test_syslog_defaults_as_nginx(tmp_path: Path) -> None:
    config = load_text(tmp_path, "error_log syslog:server=[::1],nohostname;\n" + STREAM.format(""))
    assert config.error_log.syslog == Syslog("::1", 514, 23, "nginx", False)
    assert config.error_log.level == "error"


@pytest.mark.parametrize(("line", "message"), [
    ("error_log syslog:tag=x;", "no syslog server specified"),
    ("error_log syslog:server=127.0.0.1,server=127.0.0.2;", 'duplicate syslog "server"'),
    ("error_log syslog:server=127.0.0.1,facility=nope;", 'unknown syslog facility "nope"'),
    ("error_log syslog:server=127.0.0.1,severity=loud;", 'unknown syslog severity "loud"'),
    ("error_log syslog:server=127.0.0.1,tag=a-b;",
     'syslog "tag" only allows alphanumeric characters and underscore'),
    ("error_log syslog:server=127.0.0.1,tag=" + "a" * 33 + ";", "syslog tag length exceeds 32"),
    ("error_log syslog:server=127.0.0.1,color=red;", 'unknown syslog parameter "color=red"'),
    ("error_log syslog:server=127.0.0.1:99999;", 'invalid port in syslog server "127.0.0.1:99999"'),
    ("error_log memory:32m debug;", "sheer was built without debug support"),
    ("error_log a.log loud;", 'invalid log level "loud"'),
])
def test_error_log_refusals_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    text = error_of(tmp_path, "\n" + line + "\n" + STREAM.format(""))
    assert text.startswith(f"{tmp_path / 'sheer.conf'}:2: {message}")


def test_stream_rates_sizes_and_variables(tmp_path: Path) -> None:
    config = load_text(tmp_path, "stream { proxy_download_rate 1011; proxy_upload_rate 10k;\n"
                                 "map $server_port $up { default 1; }\n"
                                 "server { listen 127.0.0.1:9000; proxy_pass 127.0.0.1:9001; }\n"
                                 "server { listen 127.0.0.1:9002; proxy_pass 127.0.0.1:9001;"
                                 " proxy_upload_rate $up; proxy_download_rate 0; } }\n")
    assert config.stream is not None
    first, second = config.stream.servers
    assert (first.proxy_download_rate, first.proxy_upload_rate) == (1011, 10240)
    assert isinstance(second.proxy_upload_rate, Template) and second.proxy_download_rate == 0


def test_http_rates(tmp_path: Path) -> None:
    config = load_text(tmp_path, "http { limit_rate 12k; limit_rate_after 256; proxy_limit_rate 20000;\n"
                                 "server { listen 127.0.0.1:9000;\n"
                                 "location / { proxy_pass http://127.0.0.1:9001; }\n"
                                 "location /v { proxy_pass http://127.0.0.1:9001; limit_rate $arg_l; "
                                 "limit_rate_after $arg_a; } } }\n")
    assert config.http is not None
    plain, by_var = config.http.servers[0].locations
    assert (plain.limit_rate, plain.limit_rate_after, plain.proxy_limit_rate) == (12288, 256, 20000)
    assert isinstance(by_var.limit_rate, Template) and isinstance(by_var.limit_rate_after, Template)


@pytest.mark.parametrize(("text", "message"), [
    ("stream {\nproxy_download_rate 1x; server { listen 127.0.0.1:9000; proxy_pass 127.0.0.1:1; } }",
     '2: "proxy_download_rate" directive invalid value "1x"'),
    ("stream {\nproxy_upload_rate $nope; server { listen 127.0.0.1:9000; proxy_pass 127.0.0.1:1; } }",
     '2: unknown "nope" variable'),
    ("http {\nlimit_rate -1; }", '2: "limit_rate" directive invalid value "-1"'),
    ("http {\nproxy_limit_rate $arg_a; }", '2: "proxy_limit_rate" directive invalid value "$arg_a"'),
])
def test_rate_refusals(tmp_path: Path, text: str, message: str) -> None:
    assert f"sheer.conf:{message}" in error_of(tmp_path, text)


def test_minus_t_resolves_syslog_servers(tmp_path: Path) -> None:
    from sheer.runtime.checks import check
    config = load_text(tmp_path, "error_log syslog:server=no-such-host.invalid;\n" + STREAM.format(""))
    assert 'host not found in syslog server "no-such-host.invalid"' in check(config)
    config = load_text(tmp_path, "error_log syslog:server=127.0.0.1:5514;\n" + STREAM.format(""))
    assert not any("syslog" in problem for problem in check(config))
