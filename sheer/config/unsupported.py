"""nginx's modules sheer will not implement: a directive of one of them is one clear error that names
the module and what to use instead, never a bare "unknown directive".

sheer is a load balancer: it speaks HTTP, TCP and UDP to its upstreams. Application protocols
(FastCGI, uwsgi, SCGI, gRPC, memcached), mail proxying, response rewriting by embedded languages or
filters (SSI, perl, njs, XSLT, image_filter) and WebDAV are left to the servers behind it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Module:
    name: str                    # nginx's module name, as load_module's file calls it
    names: frozenset[str]        # its directives
    prefixes: tuple[str, ...]    # and every directive starting so
    instead: str                 # what to do with sheer


_UPSTREAM_APP = "put an HTTP server before the application and proxy_pass to it"

MODULES: tuple[Module, ...] = (
    Module("ngx_http_fastcgi_module", frozenset(), ("fastcgi_",),
           _UPSTREAM_APP + " (sheer speaks HTTP to upstreams)"),
    Module("ngx_http_uwsgi_module", frozenset(), ("uwsgi_",), _UPSTREAM_APP + " (uWSGI's http-socket)"),
    Module("ngx_http_scgi_module", frozenset(), ("scgi_",), _UPSTREAM_APP),
    Module("ngx_http_grpc_module", frozenset(), ("grpc_",),
           "proxy gRPC as TCP with a stream server (sheer has no HTTP/2)"),
    Module("ngx_http_memcached_module", frozenset(), ("memcached_",),
           "proxy memcached as TCP with a stream server"),
    Module("ngx_http_ssi_module", frozenset({"ssi"}), ("ssi_",), "let the upstream assemble its pages"),
    Module("ngx_mail_module", frozenset({"mail", "protocol", "starttls", "xclient", "auth_http",
                                         "proxy_pass_error_message"}),
           ("imap_", "pop3_", "smtp_", "auth_http_"),
           "proxy the mail ports as TCP with a stream server"),
    Module("ngx_http_image_filter_module", frozenset(), ("image_filter",),
           "let the upstream transform images"),
    Module("ngx_http_perl_module", frozenset({"perl", "perl_modules", "perl_require", "perl_set"}), (),
           "move the logic to the upstream"),
    Module("ngx_http_js_module", frozenset(), ("js_",), "move the logic to the upstream"),
    Module("ngx_http_xslt_filter_module", frozenset({"xml_entities"}), ("xslt_",),
           "let the upstream transform XML"),
    Module("ngx_http_geoip_module", frozenset(), ("geoip_",),
           "let the upstream look the address up ($remote_addr is passed in X-Forwarded-For)"),
    Module("ngx_http_dav_module", frozenset({"dav_methods", "dav_access", "create_full_put_path",
                                             "min_delete_depth"}), (), "let the upstream serve WebDAV"),
    Module("ngx_http_mp4_module", frozenset({"mp4"}), ("mp4_",), "let the upstream serve media"),
    Module("ngx_http_flv_module", frozenset({"flv"}), (), "let the upstream serve media"),
    # third-party modules Debian packages, which modules-enabled/ may load
    Module("ngx_http_echo_module", frozenset({"echo"}), ("echo_",), "answer with `return CODE \"text\"`"),
    Module("ngx_http_headers_more_filter_module", frozenset(), ("more_set_", "more_clear_"),
           "set upstream request headers with proxy_set_header"),
    Module("ngx_http_lua_module", frozenset(), ("lua_", "content_by_lua", "access_by_lua", "rewrite_by_lua",
                                                "header_filter_by_lua", "body_filter_by_lua", "log_by_lua",
                                                "init_by_lua", "set_by_lua", "balancer_by_lua"),
           "move the logic to the upstream"),
)


def module_of(directive: str) -> Module | None:
    """The module sheer will not implement that `directive` belongs to, if any."""
    for module in MODULES:
        if directive in module.names or directive.startswith(module.prefixes):
            return module
    return None


def refusal(directive: str) -> str | None:
    """The error for a directive of such a module, or None."""
    module = module_of(directive)
    if module is None:
        return None
    return (f'"{directive}" is a directive of nginx\'s {module.name}, which sheer does not implement: '
            f"{module.instead}")
