"""Print the last results (bench/results.json) as Markdown, for docs/performance.md.

    .venv/bin/python -m bench.report [bench/results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, markdown  # noqa: E402


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results.json"
    doc = json.loads(path.read_text())
    figs = []
    for d in doc["figures"]:
        d = {k: v for k, v in d.items() if k != "passed"}
        d["spread"] = tuple(d["spread"]) if d["spread"] else None
        figs.append(Figure(**d))
    meta = doc["meta"]
    m = meta["machine"]
    print(f"Run {meta['started']}, {meta['mode']}, {meta['total_s']:.0f} s in all; load average "
          f"{m['loadavg_at_start']} at the start, {meta['loadavg_at_end']} at the end.\n")
    print(markdown(figs))
    print()
    for f in figs:
        if f.note:
            print(f"- *{f.group} / {f.name.strip()}*: {f.note}")
    print()
    lscpu = m.get("lscpu", {})
    print("Machine: " + ", ".join(f"{k}: {v}" for k, v in lscpu.items()) + f"; {m.get('mem_total_mb')} MB RAM; "
          f"Python {m['python']}; {m['platform']}")


if __name__ == "__main__":
    main()
