"""The fault catalogue: what can be injected into the simulator, and how.

Each station model declares its faults as ``FaultSpec`` entries (name, the
parameters it takes, what it does, and the plant-reference section 5 scenario ids
it serves). This module holds the types; ``sim_plc.catalogue`` merges the
stations' lists for the CLI, the HTTP API and scenario files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import BadFaultParameter


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # float, int, str or bool
    help: str
    default: Any = None  # None means required
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FaultSpec:
    name: str  # e.g. "leak", "valve_stuck"
    help: str  # one sentence: what it does to the plant
    params: tuple[Param, ...] = ()
    scenarios: tuple[str, ...] = ()  # e.g. ("F-G01",)
    station: str = ""  # filled in by the station module
    extra: dict[str, Any] = field(default_factory=dict)

    def coerce(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Check and convert parameters (strings from a CLI or JSON are accepted)."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise BadFaultParameter(f"fault {self.name}: unknown parameter(s) {', '.join(unknown)}")
        out: dict[str, Any] = {}
        for p in self.params:
            if p.name not in raw:
                if p.default is None:
                    raise BadFaultParameter(f"fault {self.name}: parameter {p.name} is required ({p.help})")
                out[p.name] = p.default
                continue
            value = raw[p.name]
            try:
                if p.type is bool and isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                else:
                    value = p.type(value)
            except (TypeError, ValueError) as exc:
                raise BadFaultParameter(
                    f"fault {self.name}: parameter {p.name}={raw[p.name]!r} is not a {p.type.__name__}"
                ) from exc
            if p.choices is not None and value not in p.choices:
                raise BadFaultParameter(
                    f"fault {self.name}: parameter {p.name}={value!r} must be one of {', '.join(p.choices)}"
                )
            out[p.name] = value
        return out
