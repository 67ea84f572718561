"""YAML loading that remembers where every value came from.

Configuration errors must name the file, the line and the field. PyYAML's safe
loader is extended so every mapping is a ``LineDict`` (with the line of each key)
and every sequence a ``LineList`` (with the line of each item); ``line_of`` then
turns a validation error's location path into a line number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


class LineDict(dict[str, Any]):
    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            # a marked YAML error, so that load_yaml names the file (not "<yaml>") and the line
            raise yaml.constructor.ConstructorError(None, None, "mapping key must be a scalar", key_node.start_mark)
        skey = str(key).lower() if isinstance(key, bool) else str(key)
        if skey in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {skey!r}", key_node.start_mark
            )
        out[skey] = loader.construct_object(value_node, deep=True)
        out.key_lines[skey] = key_node.start_mark.line + 1
    return out


def _construct_int(loader: _LineLoader, node: yaml.ScalarNode) -> int:
    """Integers as people write them in I/O lists: ``00010`` is Modicon coil 10, not
    YAML 1.1 octal 8 (which silently moved addresses)."""
    text = str(node.value).replace("_", "")
    if re.fullmatch(r"[-+]?0[0-9]+", text):
        return int(text, 10)
    value = loader.construct_yaml_int(node)
    assert isinstance(value, int)
    return value


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(path: Path) -> Any:
    """Parse ``path``; a syntax error becomes a ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError(f"{path}:{line}: yaml: {exc.problem or exc}") from exc
    except yaml.reader.ReaderError as exc:
        # a character YAML refuses (NUL, a control character): no mark, but a position in the text
        line = text.count("\n", 0, exc.position) + 1
        ch = exc.character
        what = f"#x{ch:04x}" if isinstance(ch, int) else repr(ch)
        raise ConfigError(f"{path}:{line}: yaml: unacceptable character {what}: {exc.reason}") from exc
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}:1: yaml: {first}") from exc


def line_of(root: Any, loc: Sequence[str | int]) -> int:
    """The deepest known line for a path of keys/indices into ``root``."""
    line = getattr(root, "line", 0)
    node = root
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line
