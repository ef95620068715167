"""nginx's command line, read as nginx reads it (src/core/nginx.c, ngx_get_options).

Flags may be joined (`-tq`), a value may follow its flag directly (`-p/srv/`) or as the next word,
the last one given wins, and anything else is nginx's `invalid option`. So nginx's test harness
(`nginx -p DIR/ -c nginx.conf -e error.log`), an init script or a habit types the same line to sheer.
What the values mean (relative to the prefix) is sheer.config.prefix's.
"""

from __future__ import annotations

from dataclasses import dataclass

SIGNAL_NAMES = ("stop", "quit", "reopen", "reload")


class OptionError(Exception):
    """A command line nginx would refuse, with nginx's words."""


@dataclass
class Options:
    prefix: str | None = None        # -p
    conf: str | None = None          # -c (None: sheer's default file)
    error_log: str | None = None     # -e ("stderr" stays "stderr")
    directives: str | None = None    # -g
    signal: str | None = None        # -s
    test: bool = False               # -t (and -T)
    dump: bool = False               # -T
    quiet: bool = False              # -q
    version: bool = False            # -v (and -V)
    build: bool = False              # -V
    help: bool = False               # -h, -?


_VALUE_NEEDED = {
    "p": 'option "-p" requires directory name',
    "e": 'option "-e" requires file name',
    "c": 'option "-c" requires file name',
    "g": 'option "-g" requires parameter',
    "s": 'option "-s" requires parameter',
}
_FIELD = {"p": "prefix", "e": "error_log", "c": "conf", "g": "directives", "s": "signal"}


def parse(argv: list[str]) -> Options:
    """`argv` without the program name; raises OptionError as nginx would refuse it."""
    options = Options()
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            raise OptionError(f'invalid option: "{word}"')
        if word == "--help":
            options.help = True
            i += 1
            continue
        at = 1
        while at < len(word):
            flag = word[at]
            at += 1
            if flag in _FIELD:
                if at < len(word):
                    value = word[at:]
                elif i + 1 < len(argv):
                    i += 1
                    value = argv[i]
                else:
                    raise OptionError(_VALUE_NEEDED[flag])
                if flag == "s" and value not in SIGNAL_NAMES:
                    raise OptionError(f'invalid option: "-s {value}"')
                setattr(options, _FIELD[flag], value)
                break  # the value took the rest of the word
            if not _set_switch(options, flag):
                raise OptionError(f'invalid option: "{flag}"')
        i += 1
    return options


def _set_switch(options: Options, flag: str) -> bool:
    if flag in ("?", "h"):
        options.help = options.version = True
    elif flag == "v":
        options.version = True
    elif flag == "V":
        options.version = options.build = True
    elif flag == "t":
        options.test = True
    elif flag == "T":
        options.test = options.dump = True
    elif flag == "q":
        options.quiet = True
    else:
        return False
    return True
