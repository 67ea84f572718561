"""Bad I/O lists and site files: a property-based fuzzer over the real files.

Hypothesis takes the shipped io/gas_station.yaml, io/pump_station.yaml and sites/demo.yaml and
breaks them the ways people and tools do: a key deleted, a value of the wrong type (number, text,
list, mapping, null, boolean, NaN), an entry duplicated (a signal, an interlock, a key written twice),
and the text garbled (a character replaced, inserted or deleted, a tab, an unclosed bracket, the
file cut short). For every mutant the loader must either

- load it completely (nothing half-loaded: every signal, station and interlock of the file is in
  the result), or
- refuse it with ``ConfigError`` only, never another exception, every message of the form
  ``FILE:LINE: FIELD: message`` naming that file, a line that exists in it (1..n) and a field.

The unit tests of each loader's messages are tests/plantctl/test_iolist.py and test_site.py; the
scenario files' unknown names are tests/plantctl/test_scenario.py
(test_unknown_names_give_file_line_field_message).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantctl.errors import ConfigError
from plantctl.iolist import IOList, load_io_list
from plantctl.paths import io_dir, sites_dir
from plantctl.site import Site, load_site

# FILE:LINE: FIELD: message; a field is what the file calls it, so it may itself hold a colon
MESSAGE = re.compile(r"^(?P<file>/[^:]+\.yaml):(?P<line>\d+): (?P<field>\S.*?): \S")
EXAMPLES = int(os.environ.get("PLANTCTL_FUZZ_EXAMPLES", "60"))  # per file; make test-long runs 2000

WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2),
)
GARBAGE = st.sampled_from([":", "-", "{", "[", "]", "}", "\t", "'", '"', "&a", "*a", "!!python/object:os.system",
                           "\x00", "\n", "  ", "#", "?", "|", "%", "@", "`", "\u00e9", "\ufeff", "<<: *a"])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path into a parsed YAML document."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for p in path[:-1]:
        node = node[p]
    return node


class Mutant(NamedTuple):
    what: str
    text: str

    def __repr__(self) -> str:  # hypothesis prints the draw: the recipe, not the whole file
        return f"Mutant({self.what!r})"


@st.composite
def mutants(draw: st.DrawFn, text: str) -> Mutant:
    """What was done to the file, and the mutated text."""
    what, out = draw(_mutation(text))
    return Mutant(what, out)


@st.composite
def _mutation(draw: st.DrawFn, text: str) -> tuple[str, str]:
    how = draw(st.sampled_from(["delete", "retype", "duplicate", "duplicate_key", "garble", "truncate"]))
    if how in ("garble", "truncate"):
        pos = draw(st.integers(0, len(text) - 1))
        if how == "truncate":
            return f"cut at {pos}", text[:pos]
        cut = draw(st.integers(0, 3))
        junk = draw(GARBAGE)
        return f"garble at {pos}: {cut} chars -> {junk!r}", text[:pos] + junk + text[pos + cut:]
    doc = yaml.safe_load(text)
    paths = _paths(doc)
    if how == "duplicate_key":
        # a key written twice in one mapping (a copy-paste slip); YAML alone would keep the last one
        lines = text.splitlines(keepends=True)
        keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*(- )?[A-Za-z_]+:", line)]
        i = draw(st.sampled_from(keyed))
        dup = re.sub(r"^(\s*)- ", r"\1  ", lines[i])
        return f"key of line {i + 1} repeated", "".join(lines[: i + 1] + [dup] + lines[i + 1:])
    if how == "duplicate":
        lists = [p for p in paths if isinstance(_parent(doc, p), list)]
        path = draw(st.sampled_from(lists))
        parent = _parent(doc, path)
        parent.insert(path[-1], copy.deepcopy(parent[path[-1]]))
        return f"duplicate {path}", yaml.safe_dump(doc, sort_keys=False)
    path = draw(st.sampled_from(paths))
    parent = _parent(doc, path)
    if how == "delete":
        del parent[path[-1]]
        return f"delete {path}", yaml.safe_dump(doc, sort_keys=False)
    value = draw(WRONG_VALUES.filter(lambda v: type(v) is not type(parent[path[-1]])))
    parent[path[-1]] = value
    return f"retype {path} -> {value!r}", yaml.safe_dump(doc, sort_keys=False)


def _check_refusal(exc: ConfigError, path: Path, text: str, what: str) -> None:
    n_lines = max(1, len(text.splitlines()))
    assert exc.messages, what
    for i, msg in enumerate(exc.messages):
        m = MESSAGE.match(msg)
        if m is None and i > 0 and ": cannot read: " in msg and "io_list: invalid I/O list" in exc.messages[i - 1]:
            continue  # the cause under a site message that names the line and field of the bad io_list
        assert m, f"{what}: message without file:line: field: {msg!r}"
        # a site's message may name the I/O list it loads; anything else names this file
        if m["file"] != str(path):
            assert m["file"].endswith(".yaml") and Path(m["file"]).exists(), f"{what}: {msg!r}"
            continue
        assert 1 <= int(m["line"]) <= n_lines + 1, f"{what}: line {m['line']} of {n_lines}: {msg!r}"


def _fresh(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    return tmp_path_factory.mktemp("fuzz") / name


def _io_list_case(station: str, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    original = (io_dir() / f"{station}.yaml").read_text(encoding="utf-8")
    what, text = data.draw(mutants(original), label="mutant")
    path = _fresh(tmp_path_factory, f"{station}.yaml")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        iol = load_io_list(path)
    except ConfigError as exc:
        _check_refusal(exc, path, text, what)
        return
    # accepted: then completely (every signal of the file), never half
    assert isinstance(iol, IOList)
    doc = yaml.safe_load(text)
    assert len(iol.signals) == len(doc["signals"]) == len(iol.by_tag), what


def _demo_site_text() -> str:
    """sites/demo.yaml with its relative paths made absolute, so the copy loads from anywhere."""
    text = (sites_dir() / "demo.yaml").read_text(encoding="utf-8")
    return text.replace("../io/", f"{io_dir()}/").replace("../var/", "/nonexistent-var/")


def _site_case(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    original = _demo_site_text()
    what, text = data.draw(mutants(original), label="mutant")
    path = _fresh(tmp_path_factory, "site.yaml")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        site = load_site(path, known_procedures=None)
    except ConfigError as exc:
        _check_refusal(exc, path, text, what)
        return
    assert isinstance(site, Site)
    doc = yaml.safe_load(text)
    assert set(site.stations) == {str(k) for k in doc["stations"]}, what
    assert len(site.interlocks) == len(doc.get("interlocks") or []), what
    assert all(st.iolist.signals for st in site.stations.values()), what


HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
STATIONS = pytest.mark.parametrize("station", ["gas_station", "pump_station"])


@STATIONS
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_mutated_io_lists_load_whole_or_fail_with_file_line_field(
    station: str, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _io_list_case(station, data, tmp_path_factory)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_mutated_site_files_load_whole_or_fail_with_file_line_field(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _site_case(data, tmp_path_factory)


@pytest.mark.long
@pytest.mark.timeout(3600)
@STATIONS
@settings(max_examples=2000, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_soak_2000_mutated_io_lists(station: str, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    _io_list_case(station, data, tmp_path_factory)


@pytest.mark.long
@pytest.mark.timeout(3600)
@settings(max_examples=2000, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_soak_2000_mutated_site_files(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    _site_case(data, tmp_path_factory)


def test_the_unmutated_files_load() -> None:
    """The fuzzer's starting points are valid, so every refusal above is the mutation's doing."""
    for station in ("gas_station", "pump_station"):
        load_io_list(io_dir() / f"{station}.yaml")
    load_site(sites_dir() / "demo.yaml")
