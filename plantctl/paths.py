"""Where plantctl's data folders are: the source tree, or the installed share dir."""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def _data(name: str) -> Path:
    here = _REPO / name
    if here.is_dir():
        return here
    installed = Path(sys.prefix) / "share" / "plantctl" / name
    return installed


def io_dir() -> Path:
    return _data("io")


def scenarios_dir() -> Path:
    return _data("scenarios")


def sites_dir() -> Path:
    return _data("sites")
