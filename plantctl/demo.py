"""``plantctl demo``: simulator + controller + HMI on embedded defaults.

The pieces live in their own packages (sim_plc, hmi); this command loads them by
name, so the runtime never depends on them at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from typing import Any


def _demo(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    mod = importlib.import_module("hmi.demo")
    result = asyncio.run(mod.run_demo(host=args.host, port=args.port, site_path=args.site,
                                      certfile=args.certfile, keyfile=args.keyfile))
    return int(result or 0)


def add_cli(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the simulator, the controller and the HMI together (make demo)",
        description="Start sim_plc serving both stations, the controller for sites/demo.yaml and the HMI on "
        "http://127.0.0.1:8080. Users are created with random passwords, printed once. Ctrl-C stops everything.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--site", default=None, help="site file (default: sites/demo.yaml; its journal folder holds the "
                   "journal, history, users and certificates)")
    p.add_argument("--certfile", default=None, help="serve the HMI over HTTPS with this certificate (PEM)")
    p.add_argument("--keyfile", default=None, help="the certificate's private key (PEM)")
    p.set_defaults(func=_demo)
