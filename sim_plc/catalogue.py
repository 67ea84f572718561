"""The merged fault catalogue: every fault of every station model, plus the plant-level ones
(plc_frozen, link_drop) that every station accepts.

The station modules are imported lazily, inside the functions, so that this
module (and the CLI and HTTP API built on it) imports even while a model is
missing or being written; a missing model simply contributes no faults.
"""

from __future__ import annotations

import importlib
import logging
import textwrap
from dataclasses import replace
from typing import Any

from .errors import UnknownFault
from .faults import FaultSpec
from .plant import PLANT_FAULTS

log = logging.getLogger(__name__)

# station name -> (module, class) of its model, in display order.
STATION_MODELS: dict[str, tuple[str, str]] = {
    "gas_station": ("sim_plc.gas_station", "GasStation"),
    "pump_station": ("sim_plc.pump_station", "PumpStation"),
}


def station_class(station: str) -> type[Any] | None:
    """The model class of a station, or None when its module does not exist (yet)."""
    module, cls = STATION_MODELS[station]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    found: type[Any] | None = getattr(mod, cls, None)
    return found


def all_faults() -> list[FaultSpec]:
    """Every fault each station accepts, station filled in, the plant-level ones last for each."""
    out: list[FaultSpec] = []
    for station in STATION_MODELS:
        cls = station_class(station)
        if cls is None:
            continue
        for spec in getattr(cls, "FAULTS", ()):
            out.append(spec if spec.station == station else replace(spec, station=station))
        out.extend(replace(f, station=station) for f in PLANT_FAULTS)
    return out


def find(station: str, name: str) -> FaultSpec:
    for spec in all_faults():
        if spec.station == station and spec.name == name:
            return spec
    known = sorted({s.name for s in all_faults() if s.station == station})
    if not known:
        raise UnknownFault(f"unknown station {station!r} (known: {', '.join(STATION_MODELS)})")
    raise UnknownFault(f"station {station} has no fault {name!r} (known: {', '.join(known)})")


def describe(spec: FaultSpec) -> dict[str, Any]:
    """A JSON-ready description of one fault (HTTP API, CLI)."""
    return {
        "station": spec.station,
        "fault": spec.name,
        "help": spec.help,
        "scenarios": list(spec.scenarios),
        "params": [
            {
                "name": p.name,
                "type": p.type.__name__,
                "help": p.help,
                "required": p.default is None,
                "default": p.default,
                "choices": list(p.choices) if p.choices is not None else None,
            }
            for p in spec.params
        ],
    }


def help_text(width: int = 100) -> str:
    """Every fault with its parameters and help, for ``plantctl sim --help``."""
    lines: list[str] = []
    current = ""
    for spec in all_faults():
        if spec.station != current:
            current = spec.station
            lines.append(f"  {current}:")
        ids = f" [{', '.join(spec.scenarios)}]" if spec.scenarios else ""
        lines.append(f"    {spec.name}{ids}")
        lines.extend(textwrap.wrap(spec.help, width, initial_indent=" " * 8, subsequent_indent=" " * 8, break_on_hyphens=False, break_long_words=False))
        for p in spec.params:
            if p.default is None:
                how = "required"
            else:
                how = f"default {p.default}"
            choices = f"; one of {', '.join(p.choices)}" if p.choices else ""
            text = f"{p.name}={p.type.__name__} ({how}{choices}): {p.help}"
            lines.extend(textwrap.wrap(text, width, initial_indent=" " * 8 + "- ", subsequent_indent=" " * 10,
                                   break_on_hyphens=False, break_long_words=False))
    if not lines:
        lines.append("  (no station model is installed)")
    return "\n".join(lines)


def example_command() -> str:
    """A ``plantctl sim inject`` line for the first fault that takes parameters (help text)."""
    for spec in all_faults():
        required = [p for p in spec.params if p.default is None]
        if required:
            args = " ".join(f"{p.name}={p.choices[0] if p.choices else '<' + p.type.__name__ + '>'}" for p in required)
            return f"plantctl sim inject {spec.station} {spec.name} {args}"
    return "plantctl sim inject STATION FAULT key=value ..."
