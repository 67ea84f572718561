"""Synthetic stations for the benches: large I/O lists, site files and a model that serves them.

The real I/O lists hold about two hundred signals; the capacity figures need ten thousand
and more. ``write_station`` writes an I/O list of ``n_analog`` 4-20 mA analog inputs
(``AI-00000``...) with alarm limits, a few coils (``XY-000``...) and, optionally, a 2oo3 group
of gas detectors (``GD-1A/B/C``, fast scan class) with an ESD coil ``XY-ESD`` and its limit
switch ``ZSC-ESD``. ``interlocks_for`` builds a cause-and-effect matrix over them:
2oo3 groups on consecutive analog inputs, each tripping one coil.

``SyntheticModel`` follows the sim_plc station-model contract (``step``, ``read_tags``,
``write``...) so ``sim_plc.plant.Plant`` and the sim's real Modbus and OPC-UA servers serve
it unchanged. Most inputs wobble a little around mid-range (a live plant is never
still); a few swing slowly through their alarm limits, so the alarm board and the journal
see real traffic. ``set`` changes inputs from the bench (the detectors crossing their
threshold), ``writes`` records every command a client writes, with the
``time.perf_counter()`` of its arrival.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sim_plc.faults import FaultSpec
from sim_plc.plant import Plant

# Detector and ESD tags of the detect-to-actuate benches.
DETECTORS = ("GD-1A", "GD-1B", "GD-1C")
ESD_COIL = "XY-ESD"
ESD_FEEDBACK = "ZSC-ESD"
TRIP_LEL = 25.0


def _analog(tag: str, address: int, alarms: str, bad: str = "alarm_only") -> str:
    return (
        f"  - tag: {tag}\n"
        f"    description: synthetic analog input {tag}\n"
        f"    kind: analog_in\n"
        f"    units: \"%\"\n"
        f"    range: [0.0, 100.0]\n"
        f"    raw: [4000, 20000]\n"
        f"    fault_raw: [3600, 21000]\n"
        f"    modbus: {{table: input_register, address: {address}}}\n"
        f"    normal: 50.0\n"
        f"    alarms: {alarms}\n"
        f"    bad_counts_as: {bad}\n"
        f"    bad_means: synthetic signal unknown\n"
    )


def iolist_text(station: str, n_analog: int, *, n_coils: int = 20, unit_id: int = 1, detectors: bool = False,
                n_diag: int = 0) -> str:
    """An I/O list: ``n_analog`` inputs AI-nnnnn, ``n_diag`` diagnostics DG-nnnnn (slow class),
    ``n_coils`` coils, and with ``detectors`` the 2oo3 gas group, the ESD coil and its limit switch."""
    out = [
        f"station: {station}\n",
        f"title: synthetic bench station {station}\n",
        f"modbus: {{unit_id: {unit_id}}}\n",
        f"opcua: {{namespace_uri: 'urn:plantctl:bench:{station}'}}\n",
        "signals:\n",
    ]
    if n_analog + n_diag > 9990:
        raise ValueError("at most 9990 input registers per device")
    for k in range(n_analog):
        alarms = "{LL: 5.0, L: 10.0, H: 90.0, HH: 95.0}" if k % 4 == 0 else "{L: 10.0, H: 90.0}"
        out.append(_analog(f"AI-{k:05d}", 30001 + k, alarms))
    for k in range(n_diag):
        out.append(_analog(f"DG-{k:05d}", 30001 + n_analog + k, "{H: 90.0}"))
    for k in range(n_coils):
        out.append(
            f"  - tag: XY-{k:03d}\n"
            f"    description: synthetic coil {k}\n"
            f"    kind: command_out\n"
            f"    type: bool\n"
            f"    modbus: {{table: coil, address: {k + 1}}}\n"
            f"    normal: true\n"
            f"    safe_value: false\n"
        )
    if detectors:
        base = 10_000 - 3 - 1
        for i, tag in enumerate(DETECTORS):
            out.append(_analog(tag, 30001 + base + i, "{H: 10.0, HH: 20.0}", bad="unsafe").replace("\"%\"", "\"%LEL\""))
        out.append(
            f"  - tag: {ESD_FEEDBACK}\n"
            f"    description: synthetic ESD valve closed limit switch\n"
            f"    kind: digital_in\n"
            f"    modbus: {{table: discrete_input, address: 10001}}\n"
            f"    normal: false\n"
            f"    bad_counts_as: not_confirmed\n"
            f"    bad_means: ESD valve position unknown\n"
            f"  - tag: {ESD_COIL}\n"
            f"    description: synthetic ESD (de-energise to trip)\n"
            f"    kind: command_out\n"
            f"    type: bool\n"
            f"    modbus: {{table: coil, address: {n_coils + 1}}}\n"
            f"    normal: true\n"
            f"    safe_value: false\n"
        )
    return "".join(out)


def interlocks_for(station: str, n_analog: int, groups: int) -> list[dict[str, Any]]:
    """``groups`` 2oo3 interlocks over AI-(3g)..AI-(3g+2) (>= 97 %, never reached), each tripping a coil."""
    out: list[dict[str, Any]] = []
    for g in range(min(groups, n_analog // 3)):
        out.append({
            "id": f"{station}-IL-{g:03d}",
            "station": station,
            "description": f"synthetic 2oo3 group {g}",
            "vote": "2oo3",
            "degraded": "drop",
            "members": [{"tag": f"AI-{3 * g + j:05d}", "op": ">=", "value": 97.0, "deadband": 1.0} for j in range(3)],
            "effects": [{"command": f"XY-{g % 20:03d}", "value": False}],
        })
    return out


def detector_interlock(station: str) -> dict[str, Any]:
    """The 2oo3 gas group to the ESD coil (as GT-GAS-2OO3 of the demo site, without the on-delay:
    the bench measures the path, not the deliberate filter)."""
    return {
        "id": "ESD-GAS-2OO3",
        "station": station,
        "description": "2 of 3 detectors >= 25 %LEL",
        "vote": "2oo3",
        "degraded": "drop",
        "degraded_reason": "plant-reference 3.7 default (FAULT_VOTES_TRIP = false), as the demo site",
        "members": [{"tag": t, "op": ">=", "value": TRIP_LEL, "deadband": 2.0} for t in DETECTORS],
        "effects": [{"command": ESD_COIL, "value": False}],
    }


def write_site(
    folder: Path,
    stations: dict[str, dict[str, Any]],
    interlocks: list[dict[str, Any]],
    *,
    scan_period_ms: int = 100,
    historian: bool = True,
    alarms: dict[str, Any] | None = None,
) -> Path:
    """A site file in ``folder``; ``stations`` maps name -> {"io_list": path, "plc": {...}}."""
    import yaml

    doc: dict[str, Any] = {
        "site": "bench",
        "journal": str(folder / "journal.db"),
        "historian": {"backend": "sqlite", "path": str(folder / "history.db")},
        "engine": {"scan_period_ms": scan_period_ms, "stale_after_s": 3.0, "two_person": False},
        "stations": stations,
        "procedures": [],
        "interlocks": interlocks,
    }
    if not historian:
        doc["historian"] = {"backend": "sqlite", "path": str(folder / "history.db"), "period_s": 1e9}
    if alarms:
        doc["alarms"] = alarms
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class SyntheticModel:
    """A station model that serves every tag of a synthetic I/O list (see the module docstring)."""

    FAULTS: ClassVar[tuple[FaultSpec, ...]] = ()

    def __init__(self, name: str, tags: Iterable[tuple[str, str]], seed: int = 0, swing_every: int = 100,
                 change_fraction: float = 1.0) -> None:
        """``tags``: (tag, kind) pairs; kind is "analog", "bit" or "coil". ``change_fraction``: the
        share of analog inputs that take a new value at each step (the others hold theirs)."""
        self.change_fraction = change_fraction
        self.name = name
        self.time = 0.0
        self._rng = np.random.default_rng(seed)
        pairs = list(tags)
        self._analog = [t for t, k in pairs if k == "analog" and not t.startswith("GD-")]
        self._fixed: dict[str, float | int | bool] = {}
        for t, k in pairs:
            if k == "bit":
                self._fixed[t] = False
            elif k == "coil":
                self._fixed[t] = True
            elif t.startswith("GD-"):
                self._fixed[t] = 0.0
        n = len(self._analog)
        self._phase = self._rng.uniform(0, 2 * math.pi, n)
        # most wobble +-3 % around 50 %; one in ``swing_every`` swings 2..98 % over a minute
        self._amp = np.where(np.arange(n) % swing_every == swing_every - 1, 48.0, 3.0)
        self._period = self._rng.uniform(20.0, 60.0, n)
        self._values = np.full(n, 50.0)
        self.writes: list[tuple[float, str, float | int | bool]] = []
        self.on_write: Callable[[str, float | int | bool], None] | None = None
        self._update()

    def _update(self) -> None:
        t = self.time
        new = 50.0 + self._amp * np.sin(2 * math.pi * t / self._period + self._phase)
        if self.change_fraction < 1.0 and t > 0:
            keep = self._rng.random(new.size) >= self.change_fraction
            new[keep] = self._values[keep]
        self._values = new
        self._tags: dict[str, float | int | bool] = dict(zip(self._analog, self._values.tolist(), strict=True))
        self._tags.update(self._fixed)

    def step(self, dt: float) -> None:
        self.time += dt
        self._update()

    def read_tags(self) -> dict[str, float | int | bool]:
        return self._tags

    def set(self, values: dict[str, float | int | bool]) -> None:
        for tag, v in values.items():
            self._fixed[tag] = v
        self._tags.update(values)

    def write(self, tag: str, value: float | int | bool) -> None:
        import time

        self.writes.append((time.perf_counter(), tag, value))
        self._fixed[tag] = value
        self._tags[tag] = value
        if self.on_write is not None:
            self.on_write(tag, value)

    def inject(self, fault: str, **params: Any) -> None:
        raise KeyError(fault)

    def clear(self, fault: str | None = None) -> None:
        pass

    def active_faults(self) -> list[dict[str, Any]]:
        return []


def model_for(iolist: Any, seed: int = 0, swing_every: int = 100, change_fraction: float = 1.0) -> SyntheticModel:
    """A SyntheticModel for a loaded ``plantctl.iolist.IOList``."""
    from plantctl.iolist import Kind

    kinds = []
    for s in iolist.signals:
        if s.kind is Kind.ANALOG_IN:
            kinds.append((s.tag, "analog"))
        elif s.kind is Kind.COMMAND_OUT:
            kinds.append((s.tag, "coil"))
        else:
            kinds.append((s.tag, "bit"))
    return SyntheticModel(iolist.station, kinds, seed=seed, swing_every=swing_every, change_fraction=change_fraction)


class BenchPlant(Plant):
    """``sim_plc.plant.Plant`` with a way to say "the model's values changed now" (the bench
    changes inputs between two steps, which the plant otherwise only notices at its next step)."""

    def invalidate(self, station: str) -> None:
        self._snapshots.pop(station, None)
        self._notify()
