"""`sheer`: nginx's command-line flags, plus sheer's own verbs (lab, net, doctor, trace)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable

from sheer import __version__
from sheer.cli import options
from sheer.cli.common import DEFAULT_CONF, say
from sheer.config import Config, ConfigError, load
from sheer.config.errors import unexpected
from sheer.config.model import ErrorLog
from sheer.config.prefix import STDERR, Prefixes, prefix_of

SIGNALS = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT, "reload": signal.SIGHUP, "reopen": signal.SIGUSR1}


VERBS = {
    "lab": "up|status|exec|demo|down: the article's lab in network namespaces",
    "net": "plan|apply|revert|status: the routing and netfilter state a configuration needs",
    "doctor": "the article's troubleshooting list, automated, with the fix for each finding",
    "trace": "one flow followed hop by hop with tcpdump in every namespace",
}


def _verbs() -> dict[str, Callable[[list[str]], int]]:
    # each verb's module is imported only when it runs: `sheer -c` never loads pyroute2 or the lab
    def lab(argv: list[str]) -> int:
        from sheer.cli.lab import main as lab_main
        return lab_main(argv)

    def net(argv: list[str]) -> int:
        from sheer.cli.net import main as net_main
        return net_main(argv)

    def doctor(argv: list[str]) -> int:
        from sheer.cli.doctor import main as doctor_main
        return doctor_main(argv)

    def trace(argv: list[str]) -> int:
        from sheer.cli.trace import main as trace_main
        return trace_main(argv)

    return {"lab": lab, "net": net, "doctor": doctor, "trace": trace}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sheer",
        usage="sheer [-c file] [-p prefix] [-e file] [-g directives] [-t|-T] [-q] [-v|-V] [-s signal]\n"
              "       sheer VERB ...   (VERB: " + " | ".join(VERBS) + ")",
        description="A load balancer that stays out of sight (nginx configuration syntax). "
                    "Without a verb, sheer runs (or tests, or signals) the configuration, as nginx does.",
        epilog="verbs (each has its own --help):\n" + "\n".join(
            f"  sheer {name:<7} {what}" for name, what in VERBS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", metavar="file", dest="conf", default=DEFAULT_CONF,
                   help=f"configuration file, relative to the prefix (default: {DEFAULT_CONF})")
    p.add_argument("-p", metavar="prefix", dest="prefix",
                   help="prefix for relative paths: -c, -e, pid, error_log, access_log (default: the current "
                        "directory); include is relative to the configuration's directory")
    p.add_argument("-e", metavar="file", dest="error_log",
                   help="error log, relative to the prefix, used until the configuration is read and when "
                        "its main level sets none (default and 'stderr': stderr)")
    p.add_argument("-g", metavar="directives", dest="directives",
                   help="global directives, e.g. 'worker_processes 2;'")
    p.add_argument("-t", action="store_true", dest="test", help="test the configuration and exit")
    p.add_argument("-T", action="store_true", dest="dump", help="test the configuration, dump it and exit")
    p.add_argument("-q", action="store_true", dest="quiet", help="only errors while testing")
    p.add_argument("-v", action="store_true", dest="version", help="show version and exit")
    p.add_argument("-V", action="store_true", dest="build", help="show version and build details and exit")
    p.add_argument("-s", metavar="signal", dest="signal", choices=sorted(SIGNALS),
                   help="send a signal to the master found through the configuration's pid: stop, quit, "
                        "reload, reopen")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:
        # `sheer net plan --json | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


def _main(argv: list[str]) -> int:
    verbs = _verbs()
    if argv and argv[0] in verbs:
        return verbs[argv[0]](argv[1:])
    try:
        args = options.parse(argv)
    except options.OptionError as exc:
        say(str(exc))
        return 1
    if args.version:
        print(f"sheer version: sheer/{__version__}", file=sys.stderr)
        if args.build:
            import ssl

            import uvloop
            print(f"built with Python {sys.version.split()[0]}, uvloop {uvloop.__version__}", file=sys.stderr)
            # nginx's lines, as Test::Nginx reads them (its has('openssl:3'), has('sni'))
            print(f"built with {ssl.OPENSSL_VERSION}", file=sys.stderr)
            if ssl.HAS_SNI:
                print("TLS SNI support enabled", file=sys.stderr)
        if args.help:
            print(parser().format_help(), file=sys.stderr, end="")
        return 0
    # Fixed once: a reload resolves the same relative paths against the same directory.
    args.prefix = prefix_of(args.prefix)
    where = Prefixes.of(args.conf or DEFAULT_CONF, args.prefix)
    early = EarlyLog(where.path(args.error_log) if args.error_log else STDERR)
    try:
        config = read_config(args)
    except Exception as exc:  # noqa: BLE001 - a file must never get a traceback, only its error
        early.emerg(str(exc) if isinstance(exc, ConfigError)
                    else f"reading {where.conf_file} failed: {unexpected(exc)}")
        if args.test:
            say(f"configuration file {where.conf_file} test failed")
        return 1
    if args.test:
        return test_config(config, args)
    if args.signal:
        return send_signal(config, args.signal)
    return run(config, args)


class EarlyLog:
    """The error log before the configuration is read: `-e`'s file (relative to the prefix), or
    stderr. As nginx (ngx_log_init), it is opened, created if need be, at once; what goes to it also
    goes to stderr, where whoever typed the command sees it."""

    def __init__(self, path: str) -> None:
        from sheer.io.logs import ErrorLogger, LogOpenError
        self.logger: ErrorLogger | None = None
        if path == STDERR:
            return
        try:
            self.logger = ErrorLogger(ErrorLog(path, "error"))
        except LogOpenError as exc:
            say(f"[alert] could not open error log file: {exc}")

    def emerg(self, message: str) -> None:
        say(f"[emerg] {message}")
        if self.logger is not None:
            self.logger.log("emerg", message)


def read_config(args: options.Options) -> Config:
    conf = args.conf or DEFAULT_CONF
    try:
        return load(conf, prefix=args.prefix, global_directives=args.directives, error_log=args.error_log)
    except ConfigError as exc:
        if args.conf is None and exc.source is None and not os.path.exists(DEFAULT_CONF):
            raise ConfigError(f"{exc} (write one, or try `sheer lab demo` for the article's lab)") from None
        raise


def test_config(config: Config, args: options.Options) -> int:
    from sheer.config.build_tls import notices as tls_notices
    from sheer.core.fastpath import notices as fastpath_notices
    from sheer.runtime.checks import check, warnings

    problems = check(config)
    for problem in problems:
        say(f"[emerg] {problem}")
    for level, notice in config.notices:
        if level == "warn" or not args.quiet:
            say(f"[{level}] {notice}")
    for warning in warnings(config):
        say(f"[warn] {warning}")
    for notice in [*fastpath_notices(config), *tls_notices(config)] if not args.quiet else ():
        say(f"[notice] {notice}")
    if problems:
        say(f"configuration file {config.file} test failed")
        return 1
    if args.dump:
        for path in dict.fromkeys(config.files):   # a file included twice is dumped once, as nginx does
            print(f"# configuration file {path}:")
            with open(path, encoding="utf-8", errors="replace") as handle:
                print(handle.read())
    if not args.quiet:
        say(f"the configuration file {config.file} syntax is ok")
        say(f"configuration file {config.file} test is successful")
    return 0


def send_signal(config: Config, name: str) -> int:
    """`-s`: the master is found through the `pid` of this configuration (ngx_signal_process)."""
    if not config.pid:
        say('[error] no "pid" directive in the configuration: sheer cannot find the master to signal '
            "(add `pid /run/sheer.pid;`)")
        return 1
    try:
        with open(config.pid, "rb") as handle:
            text = handle.read(32)
    except OSError as exc:
        say(f'[error] open() "{config.pid}" failed ({exc.errno}: {exc.strerror}); is sheer running?')
        return 1
    stripped = text.rstrip(b"\r\n")
    if not stripped.isdigit() or int(stripped) <= 0:
        say(f'[error] invalid PID number "{stripped.decode(errors="replace")}" in "{config.pid}"')
        return 1
    pid = int(stripped)
    try:
        os.kill(pid, SIGNALS[name])
    except ProcessLookupError:
        say(f"[error] kill({pid}, {SIGNALS[name].value}) failed (3: No such process); "
            f"remove the stale {config.pid}")
        return 1
    except PermissionError:
        say(f"[error] kill({pid}, {SIGNALS[name].value}) failed (1: Operation not permitted)")
        return 1
    return 0


def run(config: Config, args: options.Options) -> int:
    from sheer.io.tls import listeners as tls_listeners
    from sheer.runtime.checks import check, warnings
    from sheer.runtime.daemon import daemonize
    from sheer.runtime.master import Master, StartupError

    problems = check(config, tls=False)     # the master makes the TLS contexts (and says what fails)
    for problem in problems:
        say(f"[emerg] {problem}")
    if problems:
        return 1
    for level, notice in config.notices:
        say(f"[{level}] {notice}")
    for warning in warnings(config):
        say(f"[warn] {warning}")
    def reload_config() -> Config:
        return read_config(args)

    try:
        # the TLS contexts, made once (each file read once: an ssl_password_file may be a fifo) and
        # before daemonizing, so that what fails is said on the terminal
        tls = tls_listeners(config)
    except ConfigError as exc:
        say(f"[emerg] {exc}")
        return 1
    try:
        master = Master(config, reload_config, tls=tls)
        if config.daemon:
            daemonize()
        return master.run()
    except StartupError as exc:
        say(f"[emerg] {exc}")
        return 1
