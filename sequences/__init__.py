"""The emergency procedures, one module each.

Every module in this package that defines ``PROCEDURE`` (a
``plantctl.procedures.ProcedureDef``) is a procedure; ``all_procedures()``
finds them, so adding a procedure is adding a module. plantctl loads this
package by name from the site file, never at import time.
"""

from __future__ import annotations

import importlib
import pkgutil

from plantctl.procedures import ProcedureDef


def all_procedures() -> list[ProcedureDef]:
    found: list[ProcedureDef] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        proc = getattr(mod, "PROCEDURE", None)
        if isinstance(proc, ProcedureDef):
            found.append(proc)
    return found


def by_id() -> dict[str, ProcedureDef]:
    return {p.id: p for p in all_procedures()}
