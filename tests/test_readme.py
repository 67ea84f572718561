"""The README documents every fault and every route of the simulator's HTTP API."""

from __future__ import annotations

from pathlib import Path

from sim_plc import catalogue

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_fault_is_in_the_readme() -> None:
    missing = [f"{f.station}:{f.name}" for f in catalogue.all_faults() if f"`{f.name}`" not in README]
    assert not missing, f"faults missing from README.md: {missing}"


def test_every_http_route_is_in_the_readme() -> None:
    from sim_plc.http_api import create_app

    app = create_app(None)  # type: ignore[arg-type]
    paths = {r.path for r in app.routes if getattr(r, "methods", None) and not r.path.startswith(("/docs", "/openapi", "/redoc"))}
    missing = [p for p in paths if f"{p}" not in README]
    assert not missing, f"routes missing from README.md: {missing}"


def test_quick_start_is_two_commands() -> None:
    assert "make demo" in README and "make test" in README
    assert "not a certified safety system" in README
