"""What sheer reads without doing (a notice or warning at its line), what it will never do (one error
naming nginx's module), and `load_module`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sheer.config import Config, ConfigError, load

SERVER = "server { listen 127.0.0.1:8080; location / { return 200 ok; } }"


def http(*lines: str, main: str = "") -> str:
    """An http config whose lines start at line 2 + the lines of `main`."""
    return main + "http {\n" + "\n".join(lines) + "\n" + SERVER + "\n}\n"


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return load(str(path))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


# --- modules sheer will not implement ---------------------------------------------------------

@pytest.mark.parametrize(("line", "module"), [
    ("fastcgi_pass 127.0.0.1:9000;", "ngx_http_fastcgi_module"),
    ("uwsgi_pass 127.0.0.1:9000;", "ngx_http_uwsgi_module"),
    ("scgi_pass 127.0.0.1:9000;", "ngx_http_scgi_module"),
    ("grpc_pass grpc://127.0.0.1:9000;", "ngx_http_grpc_module"),
    ("ssi on;", "ngx_http_ssi_module"),
    ("image_filter resize 100 100;", "ngx_http_image_filter_module"),
    ("perl_set $x 'sub { 1 }';", "ngx_http_perl_module"),
    ("js_import main.js;", "ngx_http_js_module"),
    ("memcached_pass 127.0.0.1:11211;", "ngx_http_memcached_module"),
])
def test_a_module_sheer_will_not_implement_is_named(tmp_path: Path, line: str, module: str) -> None:
    message = error_of(tmp_path, http(f"    {line}"))
    assert message.startswith(f'{tmp_path}/lb.conf:2: "{line.split()[0]}" is a directive of nginx\'s '
                              f"{module}, which sheer does not implement: ")


def test_mail_is_refused_at_its_block(tmp_path: Path) -> None:
    message = error_of(tmp_path, "mail {\n    server { listen 110; protocol pop3; }\n}\n")
    assert message.startswith(f'{tmp_path}/lb.conf:1: "mail" is a directive of nginx\'s ngx_mail_module')
    assert "stream server" in message


def test_a_typo_stays_an_unknown_directive(tmp_path: Path) -> None:
    assert error_of(tmp_path, http("    proxy_pas http://x;")) == \
        f'{tmp_path}/lb.conf:2: unknown directive "proxy_pas"'


# --- load_module ----------------------------------------------------------------------------

def test_load_module_of_a_built_in_module_is_a_notice(tmp_path: Path) -> None:
    config = load_text(tmp_path, "load_module modules/ngx_stream_module.so;\n" + http())
    text = f'{tmp_path}/lb.conf:1: "load_module": ngx_stream_module is built into sheer: nothing to load'
    assert config.notices == (("notice", text),)


def test_load_module_of_a_missing_module_warns_and_only_its_directives_fail(tmp_path: Path) -> None:
    loaded = "load_module /usr/lib/nginx/modules/ngx_http_brotli_filter_module.so;\n"
    config = load_text(tmp_path, loaded + http())
    text = (f'{tmp_path}/lb.conf:1: "load_module": sheer does not have ngx_http_brotli_filter_module: '
            "nothing is loaded, and a directive of that module is an error")
    assert config.notices == (("warn", text),)
    message = error_of(tmp_path, loaded + http("    brotli on;"))
    assert message == (f'{tmp_path}/lb.conf:3: unknown directive "brotli": perhaps a directive of '
                       f"ngx_http_brotli_filter_module (loaded at {tmp_path}/lb.conf:1), which sheer does "
                       "not have")


def test_a_known_module_s_directive_names_it_whether_loaded_or_not(tmp_path: Path) -> None:
    message = error_of(tmp_path, "load_module modules/ngx_http_echo_module.so;\n"
                       + http("    echo hello;"))
    assert "ngx_http_echo_module, which sheer does not implement" in message


def test_load_module_only_in_main(tmp_path: Path) -> None:
    message = error_of(tmp_path, http("    load_module x.so;"))
    assert message.endswith('"load_module" directive is not allowed here')


# --- directives that change nothing in sheer -------------------------------------------------------

def test_no_op_directives_are_accepted_and_said_once(tmp_path: Path) -> None:
    config = load_text(tmp_path, http(
        "    sendfile off;", "    tcp_nopush on;", "    tcp_nodelay on;",
        "    server_names_hash_bucket_size 64;",
        "    client_body_temp_path /tmp/body 1 2;", "    proxy_temp_path /tmp/proxy;",
        "    server { listen 127.0.0.1:8081; sendfile off; location / { return 204; } }",
        main="events { multi_accept on; accept_mutex off; use epoll; }\npcre_jit on;\n"))
    said = [text.split('"')[1] for _, text in config.notices]
    assert said == ["multi_accept", "accept_mutex", "use", "pcre_jit", "sendfile", "tcp_nopush",
                    "server_names_hash_bucket_size", "proxy_temp_path"]     # client_body_temp_path is used
    assert all(level == "notice" for level, _ in config.notices)
    assert config.notices[4][1].startswith(f"{tmp_path}/lb.conf:4: ")   # the first sendfile, not the second
    # `sendfile on` is what sheer does: nothing to say
    assert load_text(tmp_path, http("    sendfile on;")).notices == ()


def test_tcp_nodelay_off_is_said(tmp_path: Path) -> None:
    config = load_text(tmp_path, http("    tcp_nodelay off;"))
    text = f'{tmp_path}/lb.conf:2: "tcp_nodelay": sheer always sets TCP_NODELAY: "off" changes nothing'
    assert config.notices == (("notice", text),)


@pytest.mark.parametrize(("line", "message"), [
    ("sendfile yes;", 'invalid value "yes" in "sendfile" directive, it must be "on" or "off"'),
    ("types_hash_max_size big;", '"types_hash_max_size" takes a non-negative number, got "big"'),
    ("client_body_temp_path /tmp/b 3;", 'invalid value "3" in "client_body_temp_path" directive'),
    ("client_body_in_file_only maybe;", 'invalid value "maybe"'),
    ("connection_pool_size 100;", "the pool size must be no less than 112"),
    ("request_pool_size 129;", "the pool size must be a multiple of 16"),
    ("client_body_in_single_buffer yes;",
     'invalid value "yes" in "client_body_in_single_buffer" directive, it must be "on" or "off"'),
    ("proxy_request_buffering 1;",
     'invalid value "1" in "proxy_request_buffering" directive, it must be "on" or "off"'),
    ("ssl_protocols TLSv1.2 TLSv1.4;", 'invalid value "TLSv1.4" in "ssl_protocols" directive'),
    ("ssl_prefer_server_ciphers maybe;",
     'invalid value "maybe" in "ssl_prefer_server_ciphers" directive, it must be "on" or "off"'),
    ("gzip_comp_level 10;", '"gzip_comp_level" takes a number from 1 to 9, got "10"'),
    ("sendfile on on;", 'invalid number of arguments in "sendfile" directive'),
    ("server_names_hash_bucket_size 64 64;",
     'invalid number of arguments in "server_names_hash_bucket_size" directive'),
])
def test_their_values_are_checked_as_nginx_does(tmp_path: Path, line: str, message: str) -> None:
    assert error_of(tmp_path, http(f"    {line}")) == f"{tmp_path}/lb.conf:2: {message}"


def test_event_method(tmp_path: Path) -> None:
    assert error_of(tmp_path, "events { use kqueue; }\n" + http()) == \
        f'{tmp_path}/lb.conf:1: invalid event type "kqueue"'


def test_ssl_settings_are_tls_now(tmp_path: Path) -> None:
    # issue 14's TLS reads them (sheer/config/tls.py): no longer "accepted, nothing done"
    config = load_text(tmp_path, http("    ssl_protocols TLSv1.2 TLSv1.3;",
                                      "    ssl_prefer_server_ciphers on;"))
    assert not any("ssl_" in notice for _, notice in config.notices)


def test_gzip_is_done_now(tmp_path: Path) -> None:
    # sheer/config/gzip.py: gzip and its companions compress, nothing to say about them
    config = load_text(tmp_path, http("    gzip on;", "    gzip_vary on;", "    gzip_types text/css;",
                                      "    gzip_buffers 16 8k;"))
    assert config.notices == ()


# --- types and files --------------------------------------------------------------------------

def test_types_block(tmp_path: Path) -> None:
    config = load_text(tmp_path, http("    types {", "        text/html html htm;", "        image/png png;",
                                      "    }", "    default_type application/octet-stream;"))
    assert config.notices == ()             # the types and the default type of the files sheer serves
    assert config.http is not None
    assert error_of(tmp_path, http("    types { text/html { } }")) == \
        f'{tmp_path}/lb.conf:2: directive "text/html" is not terminated by ";"'


def test_a_location_without_a_handler_serves_files(tmp_path: Path) -> None:
    config = load_text(tmp_path, "http {\n    root /var/www;\n    server {\n        listen 127.0.0.1:8080;\n"
                                 "        location /static/ { }\n    }\n}\n")
    assert config.http is not None
    location = config.http.servers[0].locations[0]
    assert location.return_ is None and location.static is not None
    assert location.static.root.text == "/var/www" and config.notices == ()


def test_try_files_code(tmp_path: Path) -> None:
    assert error_of(tmp_path, http("    server { listen 1; try_files $uri =4044; }")) == \
        f'{tmp_path}/lb.conf:2: invalid code "=4044"'


def test_request_body_settings_reach_the_location(tmp_path: Path) -> None:
    config = load_text(tmp_path, "http {\n client_body_buffer_size 2k; client_body_temp_path body 1;\n"
                       " server { listen 127.0.0.1:8081; proxy_request_buffering off;\n"
                       " location / { client_body_in_file_only clean; return 204; }\n"
                       " location /d { return 204; } } }\n")
    first, second = config.http.servers[0].locations[:2]
    assert first.request_body.buffer_size == 2048 and first.request_body.in_file_only == "clean"
    assert first.request_body.temp_path == os.getcwd() + "/body" and not first.request_body.buffering
    assert second.request_body.in_file_only == "off" and second.request_body.buffer_size == 2048
    assert config.notices == ()
