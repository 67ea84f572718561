"""`plantctl procedures list|show|diagram` show every procedure and every [SRC] step of the plan."""

from __future__ import annotations

import pytest

from plantctl.cli import main

# Every [SRC] row of plant-reference.md section 4, by procedure. G0.1-G0.3 are the common
# permissives of 4.0: each gas procedure with field work carries them in a permissive step.
SRC_STEPS = {
    "GAS-S": ["S1", "S2", "G0.1", "G0.2", "G0.3"],
    "GAS-L1": ["L1.1", "L1.2", "L1.3", "L1.4", "L1.5", "L1.6", "G0.1", "G0.2", "G0.3"],
    "GAS-L2": ["L2.2", "L2.3", "L2.4", "L2.5"],
    "GAS-L3": ["L3.1", "L3.2", "L3.3", "G0.1", "G0.2", "G0.3"],
    "GAS-L4": ["L4.1", "L4.2"],
    "GAS-L5": ["L5.1", "L5.2", "L5.3"],
    "GAS-F": ["F1", "F2", "F4"],
    "PUMP-PL": ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8"],
    "PUMP-PR": ["R1", "R3"],
}


def test_list_shows_every_procedure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["procedures", "list"]) == 0
    out = capsys.readouterr().out
    for pid in [*SRC_STEPS, "GAS-L", "GAS-R"]:
        assert any(line.split()[0] == pid for line in out.splitlines()), pid


@pytest.mark.parametrize("pid", sorted(SRC_STEPS))
def test_show_lists_every_src_step_with_its_plan_text(pid: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["procedures", "show", pid]) == 0
    out = capsys.readouterr().out
    ids = {line.split()[0] for line in out.splitlines() if line and not line.startswith(" ") and "[" in line}
    for sid in SRC_STEPS[pid]:
        if sid.startswith("G0."):
            assert sid in out or "G0.1-G0.3" in out, f"{pid}: permissive {sid} not shown"
        else:
            assert sid in ids, f"{pid}: step {sid} missing"
            # the step is followed by its plan sentence
            lines = out.splitlines()
            i = next(k for k, line in enumerate(lines) if line.split() and line.split()[0] == sid)
            assert len(lines[i + 1].strip()) > 15


def test_diagram_is_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["procedures", "diagram", "PUMP-PL", "--current", "P6"]) == 0
    out = capsys.readouterr().out
    assert "stateDiagram-v2" in out and "P6" in out and "P5" in out


def test_unknown_procedure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["procedures", "show", "NOPE"]) == 2
