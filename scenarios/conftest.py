"""pytest collects every scenario file here as a test item (``pytest scenarios/``).

A failing scenario reports each unmet expectation as ``file:line: expected: seen``,
in the words of the scenario file, so an engineer reads it without the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plantctl.scenario import ScenarioResult, run_scenario


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".yaml" and file_path.parent.name == "scenarios":
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Any:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioFailed(Exception):
    def __init__(self, result: ScenarioResult) -> None:
        self.result = result


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        res = run_scenario(self.path)
        self.user_properties.append(("plant_time_s", round(res.duration_s, 1)))
        self.user_properties.append(("wall_s", round(res.wall_s, 2)))
        if not res.passed:
            raise ScenarioFailed(res)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            r = excinfo.value.result
            lines = [f"scenario {r.name} failed ({r.proves})"]
            lines += [f"  {line}" for line in r.failures()]
            return "\n".join(lines)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}"
