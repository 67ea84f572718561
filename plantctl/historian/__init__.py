"""The historian: one interface (``Historian``), an embedded SQLite store, InfluxDB
through a store-and-forward spool, and the post-incident report built on both."""

from __future__ import annotations

from .base import (
    Historian,
    HistorianStatus,
    Point,
    downsample,
    historian_alarms,
    open_historian,
    points_from_snapshot,
)
from .influx import InfluxHistorian, MirroredHistorian
from .spool import Spool, SpoolOverflow
from .sqlite import SQLiteHistorian

__all__ = [
    "Historian",
    "HistorianStatus",
    "InfluxHistorian",
    "MirroredHistorian",
    "Point",
    "SQLiteHistorian",
    "Spool",
    "SpoolOverflow",
    "downsample",
    "historian_alarms",
    "open_historian",
    "points_from_snapshot",
]
