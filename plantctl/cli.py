"""The ``plantctl`` command line.

Each sub-command lives next to the code it drives and registers itself through an
``add_cli(subparsers)`` function; this module only assembles them, so a broken
optional part (say the HMI) never stops ``plantctl check`` from working.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import ConfigError

_EPILOG = """\
plantctl supervises beside the PLC's own hard-wired trips. It is not a certified
safety system.

Start here:
  plantctl check io/gas_station.yaml io/pump_station.yaml   validate I/O lists
  plantctl sim                                              run the software PLC
  plantctl sim --help                                       every fault and the HTTP API
  plantctl journal verify JOURNAL.db                        prove nothing was rewritten
"""

# (module, attribute) of every add_cli hook, in help order.
_PLUGINS: list[tuple[str, str]] = [
    ("sim_plc.cli", "add_cli"),
    ("plantctl.journal", "add_cli"),
    ("plantctl.runtime_cli", "add_cli"),
    ("plantctl.procedure_cli", "add_cli"),
    ("plantctl.scenario_cli", "add_cli"),
    ("plantctl.auth", "add_cli"),
    ("plantctl.certs", "add_cli"),
    ("plantctl.historian.report_cli", "add_cli"),
    ("plantctl.demo", "add_cli"),
]


def _check(args: argparse.Namespace) -> int:
    from .iolist import load_io_list
    from .procedure_cli import load_definitions
    from .site import load_site, looks_like_site

    known = set(load_definitions())
    status = 0
    for path in args.files:
        try:
            if looks_like_site(path):
                load_site(path, known_procedures=known)
            else:
                load_io_list(path)
        except ConfigError as exc:
            for msg in exc.messages:
                print(msg, file=sys.stderr)
            status = 2
        else:
            if not args.quiet:
                print(f"{path}: ok")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plantctl",
        description="Emergency-procedure automation for natural-gas stations and pump stations.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "check",
        help="validate I/O lists and site files",
        description="Validate I/O lists (io/*.yaml) and site files completely. Every problem is printed as "
        "file:line: field: message. Exit 0 when all are valid, 2 otherwise.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing for valid files")
    check.set_defaults(func=_check)
    for module, attr in _PLUGINS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
                continue  # that part is not installed in this build

            raise
        getattr(mod, attr)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for msg in exc.messages:
            print(msg, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
