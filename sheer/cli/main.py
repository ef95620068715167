"""`sheer`: nginx's command-line flags, plus sheer's own verbs (lab, net, doctor, trace)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable

from sheer import __version__
from sheer.cli.common import DEFAULT_CONF, say
from sheer.config import Config, ConfigError, load
from sheer.config.errors import unexpected

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
                   help=f"configuration file (default: {DEFAULT_CONF})")
    p.add_argument("-p", metavar="prefix", dest="prefix",
                   help="prefix for relative paths in the configuration (default: the configuration's "
                        "directory)")
    p.add_argument("-e", metavar="file", dest="error_log",
                   help="error log used until the configuration is read, and when it sets none (default: "
                        "stderr)")
    p.add_argument("-g", metavar="directives", dest="directives",
                   help="global directives, e.g. 'worker_processes 2;'")
    p.add_argument("-t", action="store_true", dest="test", help="test the configuration and exit")
    p.add_argument("-T", action="store_true", dest="dump", help="test the configuration, dump it and exit")
    p.add_argument("-q", action="store_true", dest="quiet", help="only errors while testing")
    p.add_argument("-v", action="store_true", dest="version", help="show version and exit")
    p.add_argument("-V", action="store_true", dest="build", help="show version and build details and exit")
    p.add_argument("-s", metavar="signal", dest="signal", choices=sorted(SIGNALS),
                   help="send a signal to the master: stop, quit, reload, reopen")
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
    args = parser().parse_args(argv)
    if args.version or args.build:
        print(f"sheer version: sheer/{__version__}", file=sys.stderr)
        if args.build:
            import uvloop
            print(f"built with Python {sys.version.split()[0]}, uvloop {uvloop.__version__}", file=sys.stderr)
        return 0
    try:
        config = read_config(args)
    except Exception as exc:  # noqa: BLE001 - a file must never get a traceback, only its error
        say(f"[emerg] {exc}" if isinstance(exc, ConfigError)
            else f"[emerg] reading {args.conf} failed: {unexpected(exc)}")
        if args.test or args.dump:
            say(f"configuration file {os.path.abspath(args.conf)} test failed")
        return 1
    if args.test or args.dump:
        return test_config(config, args)
    if args.signal:
        return send_signal(config, args.signal)
    return run(config, args)


def read_config(args: argparse.Namespace) -> Config:
    if not os.path.exists(args.conf):
        hint = ""
        if args.conf == DEFAULT_CONF:
            hint = " (write one, or try `sheer lab demo` for the article's lab)"
        raise ConfigError(f'open() "{args.conf}" failed (2: No such file or directory){hint}')
    config = load(args.conf, prefix=args.prefix, global_directives=args.directives)
    if args.error_log and config.error_log.path == "stderr":
        from dataclasses import replace
        config = replace(config, error_log=replace(config.error_log, path=args.error_log))
    return config


def test_config(config: Config, args: argparse.Namespace) -> int:
    from sheer.config.build_tls import notices as tls_notices
    from sheer.core.fastpath import notices as fastpath_notices
    from sheer.runtime.checks import check, warnings

    problems = check(config)
    for problem in problems:
        say(f"[emerg] {problem}")
    for warning in warnings(config):
        say(f"[warn] {warning}")
    for notice in [*fastpath_notices(config), *tls_notices(config)] if not args.quiet else ():
        say(f"[notice] {notice}")
    if problems:
        say(f"configuration file {config.file} test failed")
        return 1
    if args.dump:
        for path in config.files:
            print(f"# configuration file {path}:")
            with open(path, encoding="utf-8", errors="replace") as handle:
                print(handle.read())
    if not args.quiet:
        say(f"the configuration file {config.file} syntax is ok")
        say(f"configuration file {config.file} test is successful")
    return 0


def send_signal(config: Config, name: str) -> int:
    if not config.pid:
        say('[error] no "pid" directive in the configuration: sheer cannot find the master to signal '
            "(add `pid /run/sheer.pid;`)")
        return 1
    try:
        with open(config.pid) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError) as exc:
        say(f'[error] open() "{config.pid}" failed ({exc}); is sheer running?')
        return 1
    try:
        os.kill(pid, SIGNALS[name])
    except ProcessLookupError:
        say(f"[error] kill({pid}, {SIGNALS[name]}) failed (No such process); remove the stale {config.pid}")
        return 1
    return 0


def run(config: Config, args: argparse.Namespace) -> int:
    from sheer.runtime.checks import check, warnings
    from sheer.runtime.daemon import daemonize
    from sheer.runtime.master import Master, StartupError

    problems = check(config)
    for problem in problems:
        say(f"[emerg] {problem}")
    if problems:
        return 1
    for warning in warnings(config):
        say(f"[warn] {warning}")
    conf, prefix, directives = args.conf, args.prefix, args.directives

    def reload_config() -> Config:
        return load(conf, prefix=prefix, global_directives=directives)

    try:
        master = Master(config, reload_config)
        if config.daemon:
            daemonize()
        return master.run()
    except StartupError as exc:
        say(f"[emerg] {exc}")
        return 1
