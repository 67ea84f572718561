"""Conditions on the plant, as small expression objects.

Procedures and permissives say what they wait for with expressions such as
``T("PT-720") >= 0.25`` or ``T("YS-801").state("RUNNING") & T("ST-802").ge(1400)``.
Being objects (not lambdas), they can be checked when a procedure is defined
(every tag exists, with the right kind), printed in the plan view, and drawn.

Evaluation is three-valued: True, False, or None when a BAD reading makes the
answer unknowable (a rate is None too without a GOOD reading now and a fresh,
gap-free history as long as its window). A step whose confirmation is None is
*held*, never passed and never failed on a guess (plant-reference 4.10-4);
And/Or follow Kleene's logic so a known False still decides an And.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .tags import Quality, Reading

Tri = bool | None


class View(Protocol):
    """What an expression can look at: readings, procedure variables, trends."""

    def reading(self, tag: str) -> Reading | None: ...

    def var(self, name: str) -> Any: ...

    def state_index(self, tag: str, state: str) -> int: ...

    def rate(self, tag: str, window_s: float) -> float | None:
        """Units per second over the window, from fresh gap-free history; None when not known."""
        ...


class Expr:
    def eval(self, v: View) -> Tri:
        raise NotImplementedError

    def tags(self) -> set[str]:
        return set()

    def states(self) -> set[tuple[str, str]]:
        return set()

    def describe(self) -> str:
        raise NotImplementedError

    def __and__(self, other: Expr) -> Expr:
        return All((self, other))

    def __or__(self, other: Expr) -> Expr:
        return AnyOf((self, other))

    def __invert__(self) -> Expr:
        return Not(self)

    def __str__(self) -> str:
        return self.describe()


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True, eq=False)
class Compare(Expr):
    tag: str
    op: str
    value: float | bool

    def eval(self, v: View) -> Tri:
        r = v.reading(self.tag)
        if r is None or r.quality is Quality.BAD:
            return None
        return _OPS[self.op](float(r.value), float(self.value))

    def tags(self) -> set[str]:
        return {self.tag}

    def describe(self) -> str:
        if isinstance(self.value, bool):
            return f"{self.tag} = {int(self.value)}" if self.op == "==" else f"{self.tag} != {int(self.value)}"
        return f"{self.tag} {self.op} {self.value:g}"


@dataclass(frozen=True, eq=False)
class InState(Expr):
    tag: str
    names: tuple[str, ...]

    def eval(self, v: View) -> Tri:
        r = v.reading(self.tag)
        if r is None or r.quality is Quality.BAD:
            return None
        return any(int(r.value) == v.state_index(self.tag, n) for n in self.names)

    def tags(self) -> set[str]:
        return {self.tag}

    def states(self) -> set[tuple[str, str]]:
        return {(self.tag, n) for n in self.names}

    def describe(self) -> str:
        return f"{self.tag} = {'|'.join(self.names)}"


@dataclass(frozen=True, eq=False)
class Rate(Expr):
    """The tag's rate of change (units per minute) over a window, compared."""

    tag: str
    op: str
    per_min: float
    window_s: float

    def eval(self, v: View) -> Tri:
        # A trend is only known while the signal is read now and its history is fresh and long
        # enough. Anything else is None (unknown), never False: ``~Rate`` would turn a False into
        # True, and "steady" (not falling and not rising) would be confirmed from no data at all.
        current = v.reading(self.tag)
        if current is None or current.quality is not Quality.GOOD:
            return None
        r = v.rate(self.tag, self.window_s)
        if r is None:
            return None
        return _OPS[self.op](r * 60.0, self.per_min)

    def tags(self) -> set[str]:
        return {self.tag}

    def describe(self) -> str:
        return f"d{self.tag}/dt {self.op} {self.per_min:g}/min over {self.window_s:g} s"


@dataclass(frozen=True, eq=False)
class Var(Expr):
    """A procedure variable (set by an operator's answer or a step)."""

    name: str
    op: str = "truthy"
    value: Any = None

    def eval(self, v: View) -> Tri:
        x = v.var(self.name)
        if self.op == "truthy":
            return bool(x)
        if x is None:
            return False
        if self.op in ("==", "!="):
            return bool(x == self.value) if self.op == "==" else bool(x != self.value)
        return _OPS[self.op](float(x), float(self.value))

    def describe(self) -> str:
        return self.name if self.op == "truthy" else f"{self.name} {self.op} {self.value!r}"


@dataclass(frozen=True, eq=False)
class Const(Expr):
    value: bool

    def eval(self, v: View) -> Tri:
        return self.value

    def describe(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, eq=False)
class All(Expr):
    parts: tuple[Expr, ...]

    def eval(self, v: View) -> Tri:
        unknown = False
        for p in self.parts:
            r = p.eval(v)
            if r is False:
                return False
            if r is None:
                unknown = True
        return None if unknown else True

    def tags(self) -> set[str]:
        return set().union(*(p.tags() for p in self.parts))

    def states(self) -> set[tuple[str, str]]:
        return set().union(*(p.states() for p in self.parts))

    def describe(self) -> str:
        return " and ".join(_paren(p) for p in self.parts)

    def __and__(self, other: Expr) -> Expr:
        return All((*self.parts, other))


@dataclass(frozen=True, eq=False)
class AnyOf(Expr):
    parts: tuple[Expr, ...]

    def eval(self, v: View) -> Tri:
        unknown = False
        for p in self.parts:
            r = p.eval(v)
            if r is True:
                return True
            if r is None:
                unknown = True
        return None if unknown else False

    def tags(self) -> set[str]:
        return set().union(*(p.tags() for p in self.parts))

    def states(self) -> set[tuple[str, str]]:
        return set().union(*(p.states() for p in self.parts))

    def describe(self) -> str:
        return " or ".join(_paren(p) for p in self.parts)

    def __or__(self, other: Expr) -> Expr:
        return AnyOf((*self.parts, other))


@dataclass(frozen=True, eq=False)
class Not(Expr):
    part: Expr

    def eval(self, v: View) -> Tri:
        r = self.part.eval(v)
        return None if r is None else not r

    def tags(self) -> set[str]:
        return self.part.tags()

    def states(self) -> set[tuple[str, str]]:
        return self.part.states()

    def describe(self) -> str:
        return f"not {_paren(self.part)}"


def _paren(e: Expr) -> str:
    return f"({e.describe()})" if isinstance(e, All | AnyOf) else e.describe()


class T:
    """A tag reference: ``T("PT-720") >= 0.25``, ``T("ZSC-201").on()``."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __ge__(self, x: float) -> Expr:
        return Compare(self.tag, ">=", x)

    def __gt__(self, x: float) -> Expr:
        return Compare(self.tag, ">", x)

    def __le__(self, x: float) -> Expr:
        return Compare(self.tag, "<=", x)

    def __lt__(self, x: float) -> Expr:
        return Compare(self.tag, "<", x)

    def eq(self, x: float | bool) -> Expr:
        return Compare(self.tag, "==", x)

    def on(self) -> Expr:
        return Compare(self.tag, "==", True)

    def off(self) -> Expr:
        return Compare(self.tag, "==", False)

    def state(self, *names: str) -> Expr:
        return InState(self.tag, tuple(names))

    def falling_faster_than(self, per_min: float, window_s: float) -> Expr:
        """Rate of change below -per_min (units/min) over the window."""
        return Rate(self.tag, "<", -abs(per_min), window_s)

    def rising(self, window_s: float, per_min: float = 0.0) -> Expr:
        return Rate(self.tag, ">", per_min, window_s)


def all_of(parts: Iterable[Expr]) -> Expr:
    return All(tuple(parts))


def any_of(parts: Iterable[Expr]) -> Expr:
    return AnyOf(tuple(parts))


TRUE = Const(True)
FALSE = Const(False)
