"""Journal: durable events per second with group commit, and the commit time of a scan's batch.

    .venv/bin/python -m bench.bench_journal [--runs 5]

The real ``plantctl.journal.Journal`` (SQLite WAL, ``synchronous=FULL``: a commit is on the
disk before ``append_many`` returns, every record hash-chained) in a folder on the
repository's own disk. Group commit: one ``append_many`` per batch, as the controller
commits one batch per scan. Figures: events per second with batches of 100 (a busy scan),
events per second one by one (no group commit, for contrast), and the time to commit a
batch of 20 (a typical trip scan: the trip, its alarm, its commands). Not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Figure, figure, percentile  # noqa: E402


def _events(n: int, k0: int) -> list:  # type: ignore[type-arg]
    from plantctl.journal import Event, EventKind

    return [Event(EventKind.ALARM, 0.1 * (k0 + i), 1.767e9 + 0.1 * (k0 + i), "gas_station", "alarm", "", "",
                  {"id": f"gas_station:PT-{i % 500:03d}:H", "state": "unacknowledged", "priority": 3,
                   "message": "PT high: pipeline pressure (limit 6.2 MPa)", "from": "normal", "condition": True,
                   "value": 6.2134, "limit": 6.2}) for i in range(n)]


def measure(seconds: float = 2.0) -> dict[str, float]:
    from plantctl.journal import Journal

    with tempfile.TemporaryDirectory(dir=ROOT) as d:  # on the repository's disk: fsync is real
        j = Journal(Path(d) / "journal.db")
        batch = _events(100, 0)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            j.append_many(batch)
            n += len(batch)
        grouped = n / (time.perf_counter() - t0)
        one = _events(1, 0)[0]
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            j.append(one)
            n += 1
        single = n / (time.perf_counter() - t0)
        small = _events(20, 0)
        commit = []
        for _ in range(100):
            t = time.perf_counter()
            j.append_many(small)
            commit.append((time.perf_counter() - t) * 1000)
        j.close()
    return {"grouped": grouped, "single": single, "commit20_p50": percentile(commit, 50),
            "commit20_p99": percentile(commit, 99)}


def run(runs: int = 5) -> list[Figure]:
    passes = [measure() for _ in range(runs)]
    g = "journal"
    return [
        figure(g, "durable events/s, group commit (batches of 100)", [p["grouped"] for p in passes], "events/s",
               10_000, ">=", note="SQLite WAL, synchronous=FULL, hash chain; on the repository's disk"),
        figure(g, "durable events/s, one commit per event (no group commit)", [p["single"] for p in passes],
               "events/s"),
        figure(g, "commit of a 20-event scan batch, p99", [p["commit20_p99"] for p in passes], "ms",
               note=f"p50 {sorted(p['commit20_p50'] for p in passes)[len(passes) // 2]:.1f} ms; the scan waits for "
                    "it after its commands are on the wire"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from bench.common import notes, table

    figs = run(args.runs)
    print(table(figs))
    print(notes(figs))


if __name__ == "__main__":
    main()
