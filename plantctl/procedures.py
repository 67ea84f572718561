"""The procedure base: written emergency plans as journaled state machines.

Theory of operation
-------------------
A procedure (a module in ``sequences/``) is a ``ProcedureDef``: a table of
``Step`` rows, each carrying the step id and the sentence of the written plan
it implements (plant-reference.md section 4), plus recurring tasks (patrols,
logs) and interrupts (power returning mid-procedure). The table is data; the
``transitions`` library runs it: one Machine per running instance, states =
step ids + the written-out terminal states, transitions = exactly the moves
the table allows (``auto_transitions=False``), so "nothing is allowed here"
is said, not implied.

Each scan the ``ProcedureManager`` evaluates every running instance:
- on entering a step it issues the step's commands (through the engine, so
  every command carries the feedback and deadline from the I/O list), opens
  its operator task, and sets the step's deadline from the controller clock;
- the step passes when its confirmation has held for ``confirm_for_s``; it
  takes its failure branch at its deadline (and raises an alarm); a
  confirmation that is unknowable because a reading is BAD holds the step and
  escalates to a local check after 30 s instead of failing on a guess;
- a person may confirm a WAIT or COMMAND step locally only while its
  condition is unknown (None): a field check stands in for a signal nobody can
  read, never against one that reads "no". The confirmation belongs to one
  visit of the step (cleared on entry) and is withdrawn when the instruments
  read again and say no;
- a DECIDE step takes the first branch that holds; when none holds and one is
  unknown it holds like a WAIT (alarm after 30 s), unless it names where an
  unknown goes (``on_unknown``): a default must never stand in for "unknown";
- a task answer may carry only the values its task asks for (``fields``); the
  manager's own variables (``confirmed:*``, ``failed:*``, ``answer:*``,
  ``permissives``) can never be set by an answer. A task marked ``two_person``
  takes its first (affirmative) answer only with a second, different person
  (``confirmed_by``) holding one of the task's ``confirm_roles``;
- Hold freezes the instance's commands (ISA-106: protection stays active, the
  engine's interlocks are not touched); Resume continues; Abort ends it;
- every transition is journaled with the variables and issued commands, and
  ``restore`` rebuilds running instances from the journal after a restart.
  Command steps are idempotent: an item whose feedback already shows the
  target is not commanded again, so a restored step never repeats what the
  plant already did, and a step whose confirmation already holds passes at once.

Definition-time validation (``validate``) refuses a procedure with an
unreachable state, a non-terminal state with no way out, a wait without a
deadline and a failure branch, or a tag missing from the I/O list or of the
wrong kind.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from transitions import Machine

from .alarms import Priority
from .engine import Action, Actor, Command, Engine, Outcome, Role, ScanResult
from .errors import ConfigError
from .expr import Expr
from .iolist import IOList, Kind
from .journal import Event, EventKind
from .tags import Reading

Value = float | int | bool


class StepKind(StrEnum):
    COMMAND = "command"  # command equipment and verify it
    WAIT = "wait"  # wait on the plant, with a deadline
    TASK = "task"  # ask people: checklist, owner role, deadline
    PERMISSIVE = "permissive"  # two-person rule, cordon, ignition control
    DECIDE = "decide"  # branch on the plant or on variables, at once


class Terminal(StrEnum):
    DONE = "DONE"  # the plan's end reached
    ESCALATED = "ESCALATED"  # automation has no further move: a person is in charge (named alarm raised)
    ABORTED = "ABORTED"  # stopped by an authorised user
    HANDED_OVER = "HANDED_OVER"  # another procedure took over (e.g. power returned: PUMP-PR)


TERMINALS = tuple(t.value for t in Terminal)

# Variables the manager writes itself: no answer may set them, no task may ask for them.
RESERVED_VAR_PREFIXES = ("confirmed:", "failed:", "answer:")
RESERVED_VARS = frozenset({"permissives"})


def is_reserved_var(name: str) -> bool:
    return name in RESERVED_VARS or name.startswith(RESERVED_VAR_PREFIXES)


class Refusal(StrEnum):
    """Why a request to the manager was refused (the HMI maps it to an HTTP status)."""

    NOT_FOUND = "not found"  # no such run, task or step
    ROLE = "role"  # the person may not do this
    INVALID = "invalid"  # the request itself is malformed (answer, values)
    CONFLICT = "conflict"  # refused in the current state (plant, step, second person)


@dataclass(frozen=True)
class Refused(Outcome):
    """A refusal, with its reason as data (``accepted`` is always False)."""

    reason: Refusal = Refusal.CONFLICT


@dataclass(frozen=True)
class Cmd:
    """One command of a command step: ``tag := value`` (enum values by state name)."""

    tag: str
    value: Value | str
    label: str = ""  # e.g. "P-701A" for per-item bookkeeping
    on_fail_set: str = ""  # variable set True when this item fails (e.g. "RESTART_BLOCKED:P-701B")
    only_if: Expr | None = None  # issue only when this holds (e.g. the pump is de-energised)


@dataclass(frozen=True)
class Task:
    title: str
    role: Role = Role.OPERATOR
    checklist: tuple[str, ...] = ()
    answers: Mapping[str, str] = field(default_factory=lambda: {"done": ""})  # answer -> target ("" = next)
    fields: tuple[str, ...] = ()  # values the answer must carry (e.g. team_size); no other key is accepted
    # The first (affirmative) answer needs a second, different person with one of confirm_roles
    # (the HMI's two-person rule for critical actions, e.g. authorising the gas restore).
    two_person: bool = False
    confirm_roles: frozenset[Role] = frozenset({Role.OPERATOR, Role.SUPERVISOR})


@dataclass(frozen=True)
class Step:
    id: str
    text: str  # the sentence of the written plan this step implements
    kind: StepKind
    actor: str = "OP"
    next: str = ""
    on_fail: str = ""
    timeout_s: float | None = None
    confirm: Expr | None = None
    confirm_for_s: float = 0.0
    commands: tuple[Cmd, ...] = ()
    max_parallel: int = 0  # 0: all commands at once
    task: Task | None = None
    branches: tuple[tuple[Expr, str], ...] = ()  # DECIDE (and WAIT): first true wins
    on_unknown: str = ""  # DECIDE: where to go when no branch holds and one is unknown ("" = hold)
    field_work: bool = False  # field work: needs the G0 permissives
    sets: Mapping[str, Any] = field(default_factory=dict)  # variables set when the step passes
    src: bool = True  # [SRC] row of the plan, or [ADD]
    fail_alarm: str = ""  # alarm text on failure (default: derived)
    escalate_bad_after_s: float = 30.0


@dataclass(frozen=True)
class Recurring:
    """A task that comes due every ``every_s`` while the procedure is in ``during``."""

    id: str
    text: str
    every_s: float
    task: Task
    during: tuple[str, ...] = ()  # step ids; empty = whole run


@dataclass(frozen=True)
class Interrupt:
    """Leave the current step when ``when`` holds (checked before the step)."""

    when: Expr
    goto: str  # a step id or a terminal
    text: str
    during: tuple[str, ...] = ()  # empty = any non-terminal step
    start: str = ""  # procedure to start when it fires (e.g. PUMP-PR)
    wait_moving: bool = False  # let commands already moving finish (never reverse a valve halfway)
    carry: tuple[str, ...] = ()  # variables copied into the started procedure (e.g. RESTART_BLOCKED:*)


@dataclass(frozen=True)
class ProcedureDef:
    id: str
    title: str
    station: str
    source: str  # where the written plan is (procedures.md section)
    steps: tuple[Step, ...]
    initial: str = ""
    recurring: tuple[Recurring, ...] = ()
    interrupts: tuple[Interrupt, ...] = ()
    trigger: Expr | None = None  # starts by itself when this holds (rising edge)
    trigger_text: str = ""
    preempts: tuple[str, ...] = ()  # procedures put on hold when this one starts
    permissive_step: str = ""  # the step that records the G0 permissives

    @property
    def first(self) -> str:
        return self.initial or self.steps[0].id

    def step(self, sid: str) -> Step:
        for s in self.steps:
            if s.id == sid:
                return s
        raise KeyError(sid)

    def targets(self, s: Step) -> list[tuple[str, str]]:
        """(trigger, destination) moves out of a step, as the machine will allow them."""
        out: list[tuple[str, str]] = []
        if s.next:
            out.append(("ok", s.next))
        if s.on_fail:
            out.append(("fail", s.on_fail))
        for _, dest in s.branches:
            out.append((f"to_{dest}", dest))
        if s.on_unknown:
            out.append((f"to_{s.on_unknown}", s.on_unknown))
        if s.task is not None:
            for dest in s.task.answers.values():
                if dest:
                    out.append((f"to_{dest}", dest))
        for it in self.interrupts:
            if not it.during or s.id in it.during:
                out.append((f"to_{it.goto}", it.goto))
        out.append(("abort", Terminal.ABORTED.value))
        return out


# -- definition-time validation ------------------------------------------------------


def validate(defn: ProcedureDef, iolists: Mapping[str, IOList]) -> list[str]:
    """Every problem with a definition, as sentences naming the step."""
    errs: list[str] = []
    where = f"procedure {defn.id}"
    iol = iolists.get(defn.station)
    if iol is None:
        return [f"{where}: unknown station {defn.station}"]
    ids = [s.id for s in defn.steps]
    if len(set(ids)) != len(ids):
        errs.append(f"{where}: duplicate step ids")
    known = set(ids) | set(TERMINALS)
    for s in defn.steps:
        w = f"{where} step {s.id}"
        if not s.text.strip():
            errs.append(f"{w}: carries no plan text")
        for trig, dest in defn.targets(s):
            if dest not in known:
                errs.append(f"{w}: {trig} leads to unknown step {dest}")
        if s.kind in (StepKind.COMMAND, StepKind.WAIT, StepKind.TASK, StepKind.PERMISSIVE):
            if s.timeout_s is None or s.timeout_s <= 0:
                errs.append(f"{w}: a {s.kind.value} step needs a deadline (timeout_s)")
            if not s.on_fail:
                errs.append(f"{w}: a {s.kind.value} step needs an on-timeout branch (on_fail)")
        if s.kind is StepKind.DECIDE and not (s.branches and s.next):
            errs.append(f"{w}: a decision needs branches and a default (next)")
        if s.on_unknown and s.kind is not StepKind.DECIDE:
            errs.append(f"{w}: on_unknown is for decisions; a {s.kind.value} step holds on unknown")
        if s.task is not None:
            for f in s.task.fields:
                if is_reserved_var(f):
                    errs.append(f"{w}: task field {f} is reserved for the procedure's own state")
            if s.task.two_person and not s.task.confirm_roles:
                errs.append(f"{w}: a two-person task needs roles that may confirm (confirm_roles)")
        if s.kind is StepKind.COMMAND and not s.commands:
            errs.append(f"{w}: a command step without commands")
        if s.kind in (StepKind.TASK, StepKind.PERMISSIVE) and s.task is None:
            errs.append(f"{w}: a {s.kind.value} step needs a task")
        if s.kind is StepKind.WAIT and s.confirm is None and not s.branches:
            errs.append(f"{w}: a wait needs a condition")
        exprs: list[Expr] = [e for e in (s.confirm,) if e is not None]
        exprs += [e for e, _ in s.branches]
        exprs += [c.only_if for c in s.commands if c.only_if is not None]
        for e in exprs:
            for tag in e.tags():
                sig = iol.by_tag.get(tag)
                if sig is None:
                    errs.append(f"{w}: {tag} is not in {defn.station}'s I/O list")
                elif sig.kind is Kind.COMMAND_OUT:
                    errs.append(f"{w}: {tag} is a command output; a condition reads inputs")
            for tag, state in e.states():
                sig = iol.by_tag.get(tag)
                if sig is not None and (not sig.states or state not in sig.states):
                    errs.append(f"{w}: {tag} has no state {state}")
        for c in s.commands:
            sig = iol.by_tag.get(c.tag)
            if sig is None:
                errs.append(f"{w}: command {c.tag} is not in {defn.station}'s I/O list")
            elif sig.kind is not Kind.COMMAND_OUT:
                errs.append(f"{w}: {c.tag} is not a command output")
            elif isinstance(c.value, str) and (not sig.states or c.value not in sig.states):
                errs.append(f"{w}: {c.tag} has no state {c.value}")
    for it in defn.interrupts:
        for tag in it.when.tags():
            if tag not in iol.by_tag:
                errs.append(f"{where} interrupt '{it.text}': {tag} is not in the I/O list")
        if it.goto not in known:
            errs.append(f"{where} interrupt '{it.text}': leads to unknown step {it.goto}")
    if defn.trigger is not None:
        for tag in defn.trigger.tags():
            if tag not in iol.by_tag:
                errs.append(f"{where} trigger: {tag} is not in the I/O list")
    # reachability and traps
    if defn.first not in ids:
        errs.append(f"{where}: initial step {defn.first} does not exist")
        return errs
    graph = {s.id: {d for _, d in defn.targets(s)} for s in defn.steps}
    seen, todo = set(), [defn.first]
    while todo:
        n = todo.pop()
        if n in seen or n not in graph:
            seen.add(n)
            continue
        seen.add(n)
        todo.extend(graph[n])
    for sid in ids:
        if sid not in seen:
            errs.append(f"{where}: step {sid} is unreachable")
    # trap: a non-terminal set of states from which no terminal except ABORTED is reachable
    for sid in ids:
        reach, todo = set(), [sid]
        while todo:
            n = todo.pop()
            if n in reach:
                continue
            reach.add(n)
            for d in graph.get(n, ()):
                if d != Terminal.ABORTED.value:
                    todo.append(d)
        if not reach & {Terminal.DONE.value, Terminal.ESCALATED.value, Terminal.HANDED_OVER.value}:
            errs.append(f"{where}: step {sid} is a trap (no way to an end state)")
    return errs


# -- a running instance ---------------------------------------------------------------


@dataclass
class OpenTask:
    key: str  # step id or recurring id
    title: str
    role: Role
    opened_at: float
    due: float
    checklist: tuple[str, ...]
    answers: tuple[str, ...]
    fields: tuple[str, ...]
    overdue: bool = False
    two_person: bool = False
    confirm_roles: frozenset[Role] = frozenset()


class Run:
    """One running procedure. ``state`` is managed by the transitions Machine."""

    state: str

    def __init__(self, defn: ProcedureDef, run_id: str, reason: str, now: float, wall: float) -> None:
        self.defn = defn
        self.run_id = run_id
        self.reason = reason
        self.started_at = now
        self.started_wall = wall
        self.vars: dict[str, Any] = {}
        self.held = False
        self.held_since: float | None = None
        self.hold_reason = ""
        self.entered_at = now
        self.entered_wall = wall
        self.deadline: float | None = None
        self.confirm_since: float | None = None
        self.bad_since: float | None = None
        self.escalated_bad = False
        self.issued: dict[str, int] = {}  # command label -> engine command id (this step)
        self.done_items: set[str] = set()
        self.failed_items: set[str] = set()
        self.tasks: dict[str, OpenTask] = {}
        self.recurring_due: dict[str, float] = {}
        self.history: list[tuple[float, str, str, str]] = []  # (t, from, to, trigger)
        self.pending_entry = True  # run the entry actions on the next evaluation
        self.draining = False  # an interrupt waits for moving commands: issue nothing new
        self.machine = Machine(
            model=self,
            states=[s.id for s in defn.steps] + list(TERMINALS),
            initial=defn.first,
            auto_transitions=False,
            send_event=False,
        )
        for s in defn.steps:
            seen: set[tuple[str, str]] = set()
            for trig, dest in defn.targets(s):
                if (trig, dest) in seen:
                    continue
                seen.add((trig, dest))
                self.machine.add_transition(trig, s.id, dest)

    @property
    def step_def(self) -> Step | None:
        try:
            return self.defn.step(self.state)
        except KeyError:
            return None

    @property
    def finished(self) -> bool:
        return self.state in TERMINALS

    def summary(self) -> dict[str, Any]:
        s = self.step_def
        return {
            "run": self.run_id,
            "procedure": self.defn.id,
            "title": self.defn.title,
            "station": self.defn.station,
            "state": self.state,
            "step_text": s.text if s else self.state,
            "held": self.held,
            "hold_reason": self.hold_reason,
            "deadline": self.deadline,
            "vars": dict(self.vars),
            "tasks": [
                {"key": t.key, "title": t.title, "role": t.role.value, "due": t.due, "overdue": t.overdue,
                 "checklist": list(t.checklist), "answers": list(t.answers), "fields": list(t.fields),
                 "two_person": t.two_person}
                for t in self.tasks.values()
            ],
        }


class _RunView:
    """The expression View of one run: readings of its station, its variables."""

    def __init__(self, mgr: ProcedureManager, run: Run, snapshot: Mapping[str, Reading], now: float) -> None:
        self.mgr, self.run, self.snapshot, self.now = mgr, run, snapshot, now

    def reading(self, tag: str) -> Reading | None:
        return self.snapshot.get(self.mgr.key(self.run.defn.station, tag))

    def var(self, name: str) -> Any:
        return self.run.vars.get(name)

    def state_index(self, tag: str, state: str) -> int:
        sig = self.mgr.iolists[self.run.defn.station].by_tag[tag]
        assert sig.states is not None
        return sig.states.index(state)

    def rate(self, tag: str, window_s: float) -> float | None:
        return self.mgr.rate(self.run.defn.station, tag, window_s, self.now)


class ProcedureManager:
    """Runs every procedure instance of a controller; sans-I/O like the engine."""

    def __init__(
        self,
        definitions: Iterable[ProcedureDef],
        iolists: Mapping[str, IOList],
        *,
        pause_timers_on_hold: bool = False,
        hold_on_link_loss: bool = True,
        stale_after_s: float = 3.0,
    ) -> None:
        self.defs = {d.id: d for d in definitions}
        self.iolists = dict(iolists)
        self.multi = len(self.iolists) > 1
        self.pause_timers_on_hold = pause_timers_on_hold
        self.hold_on_link_loss = hold_on_link_loss
        # A rate over history with a gap longer than this (or whose newest sample is older) is unknown:
        # the tag table's staleness bound (site engine.stale_after_s, 3 s by default).
        self.stale_after_s = stale_after_s
        problems = [p for d in self.defs.values() for p in validate(d, self.iolists)]
        if problems:
            raise ConfigError(problems)
        self.runs: dict[str, Run] = {}
        self._seq = itertools.count(1)
        self._events: list[Event] = []
        self._commands: list[Command] = []
        self._trigger_prev: dict[str, bool] = {}
        self._history: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._rate_tags = {
            (d.station, e.tag)
            for d in self.defs.values()
            for ex in _conditions(d)
            for e in _rates(ex)
        }
        self._engine: Engine | None = None
        self._now = 0.0
        self._wall = 0.0
        # the last scan's snapshot: a local confirmation between scans is judged on what the scan saw
        self._snapshot: Mapping[str, Reading] = {}

    def key(self, station: str, tag: str) -> str:
        return f"{station}:{tag}" if self.multi else tag

    # -- public requests --------------------------------------------------------
    def active(self, proc_id: str | None = None) -> list[Run]:
        return [r for r in self.runs.values() if not r.finished and (proc_id is None or r.defn.id == proc_id)]

    def start(self, proc_id: str, reason: str, now: float, wall: float, user: str = "") -> Run | None:
        defn = self.defs.get(proc_id)
        if defn is None:
            self._event(EventKind.PROCEDURE_TRANSITION, now, wall, "", proc_id, user, {"error": f"unknown procedure {proc_id}"})
            return None
        existing = self.active(proc_id)
        if existing:
            return existing[0]
        run = Run(defn, f"{proc_id}#{next(self._seq)}", reason, now, wall)
        self.runs[run.run_id] = run
        self._journal_transition(run, "", run.state, "start", now, wall, user, {"reason": reason})
        for other in defn.preempts:
            for r in self.active(other):
                if not r.held:
                    self._hold(r, f"pre-empted by {proc_id}", now, wall, user)
        return run

    def request(self, action: str, run_id: str, actor: Actor, now: float, wall: float, *, confirmed_by: Actor | None = None) -> Outcome:
        run = self.runs.get(run_id)
        if run is None or run.finished:
            return self._refuse(actor, action, run_id, "no such running procedure", now, wall)
        if not actor.roles & {Role.OPERATOR, Role.SUPERVISOR}:
            return self._refuse(actor, action, run_id, f"{actor.user} may not {action} a procedure (role)", now, wall)
        if action == "hold":
            if run.held:
                return self._refuse(actor, action, run_id, "already held", now, wall)
            self._hold(run, f"held by {actor.user}", now, wall, actor.user)
        elif action == "resume":
            if not run.held:
                return self._refuse(actor, action, run_id, "not held", now, wall)
            self._resume(run, now, wall, actor.user)
        elif action == "abort":
            if confirmed_by is None or confirmed_by.user == actor.user or not confirmed_by.roles & {Role.OPERATOR, Role.SUPERVISOR}:
                return self._refuse(actor, action, run_id, "abort needs a second, different operator to confirm", now, wall)
            self._fire(run, "abort", now, wall, actor.user, {"confirmed_by": confirmed_by.user})
        else:
            return self._refuse(actor, action, run_id, f"unknown action {action}", now, wall)
        self._event(EventKind.OPERATOR_ACTION, now, wall, run.defn.station, run.run_id, actor.user,
                    {"action": action, "accepted": True, "run": run_id}, actor.address)
        return Outcome(True, f"{action} {run_id}")

    def check_answer(self, run_id: str, key: str, answer: str, actor: Actor,
                     values: Mapping[str, Any] | None = None) -> Refused | None:
        """Why this answer would be refused (before any second person is asked), or None. No side effects."""
        run = self.runs.get(run_id)
        if run is None or run.finished:
            return Refused(False, "no such running procedure", reason=Refusal.NOT_FOUND)
        task = run.tasks.get(key)
        if task is None:
            return Refused(False, f"no open task {key}", reason=Refusal.NOT_FOUND)
        if task.role not in actor.roles and Role.SUPERVISOR not in actor.roles:
            return Refused(False, f"task {key} belongs to role {task.role.value}", reason=Refusal.ROLE)
        if answer not in task.answers:
            return Refused(False, f"answer must be one of {', '.join(task.answers)}", reason=Refusal.INVALID)
        vals = dict(values or {})
        # Only the values the task asks for: an answer must never write the procedure's own state
        # (confirmed:<step>, permissives, FUEL_URGENT_REQUESTED ...) behind the steps' backs.
        reserved = sorted(k for k in vals if is_reserved_var(k))
        if reserved:
            return Refused(False, f"task {key}: {', '.join(reserved)} is reserved for the procedure's own state",
                           reason=Refusal.INVALID)
        unknown = sorted(k for k in vals if k not in task.fields)
        if unknown:
            asks = f"it asks for {', '.join(task.fields)}" if task.fields else "it asks for no values"
            return Refused(False, f"task {key} does not ask for {', '.join(unknown)} ({asks})",
                           reason=Refusal.INVALID)
        missing = [f for f in task.fields if f not in vals]
        if missing and answer == task.answers[0]:
            return Refused(False, f"answer needs {', '.join(missing)}", reason=Refusal.INVALID)
        return None

    def confirm_roles_for(self, run_id: str, key: str, answer: str) -> frozenset[Role] | None:
        """The roles a second person needs to confirm this answer, or None when one person may give it."""
        run = self.runs.get(run_id)
        task = None if run is None else run.tasks.get(key)
        if task is None or not task.two_person or not task.answers or answer != task.answers[0]:
            return None
        return task.confirm_roles

    def answer(self, run_id: str, key: str, answer: str, actor: Actor, now: float, wall: float,
               values: Mapping[str, Any] | None = None, *, confirmed_by: Actor | None = None) -> Outcome:
        problem = self.check_answer(run_id, key, answer, actor, values)
        if problem is not None:
            return self._refuse(actor, "answer", run_id, problem.message, now, wall, problem.reason)
        run = self.runs[run_id]
        task = run.tasks[key]
        roles = self.confirm_roles_for(run_id, key, answer)
        if roles is not None:
            if confirmed_by is None or confirmed_by.user == actor.user:
                return self._refuse(actor, "answer", run_id, f"task {key} ({task.title}): '{answer}' needs a second, "
                                    "different person to confirm", now, wall, Refusal.CONFLICT)
            if not confirmed_by.roles & roles:
                return self._refuse(actor, "answer", run_id, f"task {key}: {confirmed_by.user} may not confirm "
                                    f"(needs {' or '.join(sorted(r.value for r in roles))})", now, wall, Refusal.ROLE)
        vals = dict(values or {})
        del run.tasks[key]
        run.vars.update(vals)
        run.vars[f"answer:{key}"] = answer
        payload: dict[str, Any] = {"task": key, "title": task.title, "answer": answer, "values": vals,
                                   "late": now > task.due, "after_s": round(now - task.opened_at, 1)}
        if roles is not None and confirmed_by is not None:
            payload["confirmed_by"] = confirmed_by.user
        self._event(EventKind.TASK, now, wall, run.defn.station, run.run_id, actor.user, payload, actor.address)
        if task.overdue:
            self._events.extend(self._alarms().clear(f"{run.run_id}:{key}:overdue", now, wall))
        rec = next((r for r in run.defn.recurring if r.id == key), None)
        if rec is not None:
            run.recurring_due[key] = now + rec.every_s
            return Outcome(True, f"{key} recorded")
        step = run.step_def
        if step is not None and step.id == key:
            if step.kind is StepKind.PERMISSIVE:
                run.vars["permissives"] = answer == task.answers[0]
            target = (step.task.answers.get(answer, "") if step.task else "")
            if target:
                self._fire(run, f"to_{target}", now, wall, actor.user)
            elif answer == task.answers[0]:
                run.vars[f"confirmed:{key}"] = True
            else:
                self._fail(run, step, now, wall, f"answered '{answer}' by {actor.user}")
        return Outcome(True, f"{key}: {answer}")

    def confirm_locally(self, run_id: str, actor: Actor, now: float, wall: float) -> Outcome:
        """A field check stands in for a confirmation the instruments cannot give (a BAD or missing signal).

        Accepted only while the step's condition is unknown (None) on the last scan: a person may
        vouch for what nobody can read, never overrule a reading that says no (a known False).
        """
        run = self.runs.get(run_id)
        if run is None or run.finished or run.step_def is None:
            return self._refuse(actor, "confirm", run_id, "no such running procedure", now, wall, Refusal.NOT_FOUND)
        if not actor.roles & {Role.OPERATOR, Role.SUPERVISOR}:
            return self._refuse(actor, "confirm", run_id, f"{actor.user} may not confirm a step (role)", now, wall,
                                Refusal.ROLE)
        step = run.step_def
        if run.pending_entry:
            return self._refuse(actor, "confirm", run_id, f"step {step.id} has not started yet", now, wall)
        if step.kind not in (StepKind.WAIT, StepKind.COMMAND) or step.confirm is None:
            why = ("answer its task instead" if step.kind in (StepKind.TASK, StepKind.PERMISSIVE)
                   else "it has no instrument condition a field check could stand in for")
            return self._refuse(actor, "confirm", run_id, f"step {step.id} ({step.kind.value}) cannot be confirmed "
                                f"locally: {why}", now, wall)
        verdict = step.confirm.eval(_RunView(self, run, self._snapshot, self._now))
        if verdict is False:
            return self._refuse(actor, "confirm", run_id, f"step {step.id}: the instruments read and say no "
                                f"({step.confirm.describe()} is false): a local check cannot overrule them",
                                now, wall)
        if verdict is True:
            return self._refuse(actor, "confirm", run_id, f"step {step.id}: the instruments already confirm it",
                                now, wall)
        run.vars[f"confirmed:{step.id}"] = True
        self._event(EventKind.OPERATOR_ACTION, now, wall, run.defn.station, run_id, actor.user,
                    {"action": "confirm locally", "step": step.id, "accepted": True,
                     "condition": step.confirm.describe()}, actor.address)
        return Outcome(True, f"{step.id} confirmed locally")

    # -- the scan -----------------------------------------------------------------
    def step(self, snapshot: Mapping[str, Reading], now: float, wall: float, engine: Engine) -> ScanResult:
        self._engine, self._now, self._wall = engine, now, wall
        self._snapshot = snapshot
        self._record_history(snapshot, now)
        for d in self.defs.values():
            if d.trigger is None:
                continue
            val = d.trigger.eval(_TriggerView(self, d, snapshot, now)) is True
            if val and not self._trigger_prev.get(d.id, False) and not self.active(d.id):
                self.start(d.id, d.trigger_text or "trigger", now, wall)
            self._trigger_prev[d.id] = val
        for run in list(self.runs.values()):
            if not run.finished:
                self._evaluate(run, snapshot, now, wall, engine)
        out = ScanResult(commands=self._commands, events=self._events)
        self._commands, self._events = [], []
        return out

    def _evaluate(self, run: Run, snapshot: Mapping[str, Reading], now: float, wall: float, engine: Engine) -> None:
        view = _RunView(self, run, snapshot, now)
        # link lost on this station: hold the steps (F-X01); protection keeps running in the engine
        if self.hold_on_link_loss:
            up = engine.link_up.get(run.defn.station, True)
            if not up and not run.held:
                self._hold(run, "PLC link lost", now, wall, "")
            elif up and run.held and run.hold_reason == "PLC link lost":
                self._resume(run, now, wall, "")
        self._recurring(run, view, now, wall)
        for it in run.defn.interrupts:
            if (not it.during or run.state in it.during) and it.when.eval(view) is True:
                if it.wait_moving and any(engine.command_state(cid) == "pending" for cid in run.issued.values()):
                    run.draining = True  # nothing new starts; the valve that is moving finishes first
                    continue
                run.draining = False
                if it.start:
                    started = self.start(it.start, it.text, now, wall)
                    if started is not None:
                        for name in it.carry:
                            prefix = name[:-1] if name.endswith("*") else None
                            for k, v in run.vars.items():
                                if k == name or (prefix is not None and k.startswith(prefix)):
                                    started.vars[k] = v
                self._fire(run, f"to_{it.goto}", now, wall, "", {"interrupt": it.text})
                return
        for _ in range(50):  # decisions and already-satisfied steps chain within one scan
            step = run.step_def
            if step is None or run.finished:
                return
            if run.pending_entry:
                if run.held:
                    return
                self._enter(run, step, view, now, wall, engine)
            before = run.state
            self._check(run, step, view, now, wall, engine)
            if run.state == before and not run.pending_entry:
                return

    def _enter(self, run: Run, step: Step, view: _RunView, now: float, wall: float, engine: Engine) -> None:
        run.pending_entry = False
        run.entered_at, run.entered_wall = now, wall
        run.deadline = now + step.timeout_s if step.timeout_s else None
        run.confirm_since = None
        run.bad_since = None
        run.escalated_bad = False
        run.issued, run.done_items, run.failed_items = {}, set(), set()
        # A local confirmation belongs to one visit of the step: a WAIT or COMMAND step entered again (a
        # loop, a retry, a restart) must be confirmed again, never pass on a field check made for an
        # earlier visit. A task's confirmation is its journaled answer and stands (PUMP-PL notifies the
        # parties once; GAS-L2's permissives stand when L2.5 is passed again).
        if step.kind in (StepKind.WAIT, StepKind.COMMAND):
            run.vars.pop(f"confirmed:{step.id}", None)
        if step.task is not None and step.kind in (StepKind.TASK, StepKind.PERMISSIVE):
            self._open_task(run, step.id, step.task, now, wall, run.deadline or now + 3600.0)
        if step.kind is StepKind.COMMAND:
            self._issue(run, step, view, now, wall, engine)

    def _issue(self, run: Run, step: Step, view: _RunView, now: float, wall: float, engine: Engine) -> None:
        """Issue the step's commands that are due, honouring max_parallel; skip those already done."""
        if run.held or run.draining:
            return
        if step.field_work and not run.vars.get("permissives", False):
            return  # field work waits for the G0 permissives: no command goes out before them
        in_flight = sum(1 for lbl, cid in run.issued.items() if engine.command_state(cid) == "pending" and lbl not in run.done_items)
        limit = step.max_parallel or len(step.commands)
        for c in step.commands:
            label = c.label or c.tag
            if label in run.issued or label in run.done_items or label in run.failed_items:
                continue
            if c.only_if is not None and c.only_if.eval(view) is not True:
                run.done_items.add(label)  # nothing to do for this item
                continue
            if self._already_there(run, c, view):
                run.done_items.add(label)
                continue
            if in_flight >= limit:
                break
            value = self._value(run, c)
            refusal = engine.held_by_trip(run.defn.station, c.tag, value)
            if refusal:
                run.failed_items.add(label)
                self._event(EventKind.SYSTEM, now, wall, run.defn.station, run.run_id, "", {"what": "command refused", "tag": c.tag, "why": refusal})
                continue
            cmd = engine.make_command(run.defn.station, c.tag, value, f"{run.run_id}/{step.id}", now)
            engine.track(cmd)
            self._commands.append(cmd)
            self._event(EventKind.COMMAND, now, wall, run.defn.station, cmd.source, "",
                        {"id": cmd.id, "tag": c.tag, "value": value, "label": label, "step": step.id,
                         "verify": None if cmd.verify is None else {"tag": cmd.verify.tag, "expect": cmd.verify.expect, "deadline": cmd.verify.deadline}})
            run.issued[label] = cmd.id
            in_flight += 1

    def _value(self, run: Run, c: Cmd) -> Value:
        sig = self.iolists[run.defn.station].by_tag[c.tag]
        if isinstance(c.value, str):
            assert sig.states is not None
            return sig.states.index(c.value)
        return c.value

    def _already_there(self, run: Run, c: Cmd, view: _RunView) -> bool:
        sig = self.iolists[run.defn.station].by_tag[c.tag]
        fb = sig.feedback
        if not fb:
            return False
        key = c.value if isinstance(c.value, str) else (str(bool(c.value)).lower() if sig.is_bit else str(c.value))
        target = fb.get(key)
        if not isinstance(target, dict):
            return False
        r = view.reading(str(target["tag"]))
        return r is not None and r.good and bool(r.value) == bool(target.get("value", True))

    def _check(self, run: Run, step: Step, view: _RunView, now: float, wall: float, engine: Engine) -> None:
        if run.held:
            return
        if step.field_work and not run.vars.get("permissives", False):
            # field work waits for the G0 permissives (two-person rule, cordon, ignition control)
            self._events.extend(self._alarms().raise_(
                f"{run.run_id}:{step.id}:blocked", f"{run.defn.id} {step.id} blocked: field permissives (G0.1-G0.3) not confirmed",
                Priority.HIGH, now, wall, run.defn.station, run.run_id))
            if run.deadline is not None and now >= run.deadline:
                self._fail(run, step, now, wall, "field permissives not confirmed")
            return
        unknown_branch = False
        for cond, dest in step.branches:
            verdict = cond.eval(view)
            if verdict is True:
                run.vars.update(step.sets)
                self._fire(run, f"to_{dest}", now, wall, "", {"because": cond.describe()})
                return
            unknown_branch = unknown_branch or verdict is None
        if step.kind is StepKind.DECIDE:
            if unknown_branch:
                # No branch holds but one cannot be read: the default is not "unknown". Go where the
                # step says an unknown goes, else hold here (as a WAIT does) and ask for a local check.
                if step.on_unknown:
                    run.vars.update(step.sets)
                    self._fire(run, f"to_{step.on_unknown}", now, wall, "", {"because": "a branch is unknown"})
                else:
                    self._hold_unknown(run, step, now, wall, "decision")
                return
            run.vars.update(step.sets)
            self._fire(run, "ok", now, wall)
            return
        ok: bool | None
        verdict = None  # the instruments' own answer, for a local confirmation
        if step.kind is StepKind.COMMAND:
            self._issue(run, step, view, now, wall, engine)
            for lbl, cid in list(run.issued.items()):
                st = engine.command_state(cid)
                if st == "verified":
                    run.done_items.add(lbl)
                elif st == "failed" and lbl not in run.failed_items:
                    run.failed_items.add(lbl)
                    item = next((c for c in step.commands if (c.label or c.tag) == lbl), None)
                    if item is not None and item.on_fail_set:
                        run.vars[item.on_fail_set] = True
                    self._issue(run, step, view, now, wall, engine)
            all_items = {c.label or c.tag for c in step.commands}
            if run.failed_items and (run.failed_items | run.done_items) >= all_items and not step.confirm:
                self._fail(run, step, now, wall, f"not confirmed: {', '.join(sorted(run.failed_items))}")
                return
            ok = run.done_items >= all_items and not run.failed_items
            if step.confirm is not None:
                verdict = step.confirm.eval(view)
                ok = None if verdict is None else (verdict and (run.done_items | run.failed_items) >= all_items)
        elif step.kind in (StepKind.TASK, StepKind.PERMISSIVE):
            ok = bool(run.vars.get(f"confirmed:{step.id}"))
            if ok and step.confirm is not None:
                ok = step.confirm.eval(view)
        else:
            verdict = step.confirm.eval(view) if step.confirm is not None else False
            ok = verdict
        local = f"confirmed:{step.id}"
        if step.kind in (StepKind.WAIT, StepKind.COMMAND) and run.vars.get(local):
            if ok is None:
                ok = True  # confirmed locally by a person: a field check stands in for the unreadable signal
            elif verdict is False:
                # the instruments read again and say no: the field check no longer stands
                del run.vars[local]
                self._event(EventKind.SYSTEM, now, wall, run.defn.station, run.run_id, "",
                            {"what": "local confirmation withdrawn", "step": step.id,
                             "why": f"{step.confirm.describe() if step.confirm else step.id} reads false"})
        if ok is None:
            self._hold_unknown(run, step, now, wall, "confirmation")
            return  # held, not failed: a BAD reading never decides a step
        run.bad_since = None
        if ok:
            if run.confirm_since is None:
                run.confirm_since = now
            if now - run.confirm_since >= step.confirm_for_s - 1e-9:
                run.vars.update(step.sets)
                self._fire(run, "ok", now, wall)
            return
        run.confirm_since = None
        if run.deadline is not None and now >= run.deadline:
            self._fail(run, step, now, wall, "deadline passed")

    def _hold_unknown(self, run: Run, step: Step, now: float, wall: float, what: str) -> None:
        """Hold a step whose condition cannot be read; after ``escalate_bad_after_s`` ask for a local check."""
        if run.bad_since is None:
            run.bad_since = now
        if not run.escalated_bad and now - run.bad_since >= step.escalate_bad_after_s:
            run.escalated_bad = True
            self._events.extend(self._alarms().raise_(
                f"{run.run_id}:{step.id}:bad", f"{run.defn.id} {step.id}: {what} unreadable (BAD quality or no "
                "fresh trend): check locally", Priority.HIGH, now, wall, run.defn.station, run.run_id))
        run.confirm_since = None

    def _fail(self, run: Run, step: Step, now: float, wall: float, why: str) -> None:
        text = step.fail_alarm or f"{run.defn.id} {step.id} failed: {why}"
        self._events.extend(self._alarms().raise_(f"{run.run_id}:{step.id}:failed", text, Priority.HIGH, now, wall, run.defn.station, run.run_id))
        run.vars[f"failed:{step.id}"] = True
        self._fire(run, "fail", now, wall, "", {"why": why})

    # -- tasks ----------------------------------------------------------------------
    def _open_task(self, run: Run, key: str, task: Task, now: float, wall: float, due: float) -> None:
        answers = tuple(task.answers)
        run.tasks[key] = OpenTask(key, task.title, task.role, now, due, task.checklist, answers, task.fields,
                                  two_person=task.two_person, confirm_roles=task.confirm_roles)
        self._event(EventKind.TASK, now, wall, run.defn.station, run.run_id, "",
                    {"task": key, "opened": True, "title": task.title, "role": task.role.value,
                     "checklist": list(task.checklist), "due_in_s": round(due - now, 1)})

    def _recurring(self, run: Run, view: _RunView, now: float, wall: float) -> None:
        for rec in run.defn.recurring:
            active = not rec.during or run.state in rec.during
            if not active:
                if rec.id in run.tasks:
                    del run.tasks[rec.id]
                run.recurring_due.pop(rec.id, None)
                continue
            due = run.recurring_due.get(rec.id)
            if due is None:
                due = now + rec.every_s
                run.recurring_due[rec.id] = due
                self._open_task(run, rec.id, rec.task, now, wall, due)
            elif rec.id not in run.tasks:
                # the next round opens when the last answer's period ends
                if now >= due - rec.every_s:
                    self._open_task(run, rec.id, rec.task, now, wall, due)
        for t in run.tasks.values():
            if not t.overdue and now > t.due:
                t.overdue = True
                self._events.extend(self._alarms().raise_(
                    f"{run.run_id}:{t.key}:overdue", f"{run.defn.id}: task overdue: {t.title}",
                    Priority.HIGH, now, wall, run.defn.station, run.run_id))

    # -- moves ----------------------------------------------------------------------
    def _fire(self, run: Run, trigger: str, now: float, wall: float, user: str = "", extra: dict[str, Any] | None = None) -> None:
        src = run.state
        if trigger not in run.machine.get_triggers(src):
            self._event(EventKind.SYSTEM, now, wall, run.defn.station, run.run_id, user,
                        {"what": "move not allowed", "from": src, "trigger": trigger})
            return
        getattr(run, trigger)()
        dest = run.state
        for key in [k for k in run.tasks if k == src]:
            del run.tasks[key]
        run.pending_entry = dest not in TERMINALS
        run.draining = False
        run.history.append((now, src, dest, trigger))
        self._journal_transition(run, src, dest, trigger, now, wall, user, extra or {})
        if dest == Terminal.ESCALATED.value:
            self._events.extend(self._alarms().raise_(
                f"{run.run_id}:escalated", f"{run.defn.id} escalated from {src}: operator in charge", Priority.CRITICAL,
                now, wall, run.defn.station, run.run_id))
        if dest in TERMINALS:
            run.tasks.clear()
            if dest != Terminal.ABORTED.value:
                for other in run.defn.preempts:
                    for r in self.active(other):
                        if r.held and r.hold_reason == f"pre-empted by {run.defn.id}":
                            self._resume(r, now, wall, "")

    def _hold(self, run: Run, reason: str, now: float, wall: float, user: str) -> None:
        run.held, run.held_since, run.hold_reason = True, now, reason
        self._journal_transition(run, run.state, run.state, "hold", now, wall, user, {"reason": reason})

    def _resume(self, run: Run, now: float, wall: float, user: str) -> None:
        if self.pause_timers_on_hold and run.held_since is not None and run.deadline is not None:
            run.deadline += now - run.held_since
        run.held, run.held_since, run.hold_reason = False, None, ""
        self._journal_transition(run, run.state, run.state, "resume", now, wall, user, {})

    def _journal_transition(self, run: Run, src: str, dest: str, trigger: str, now: float, wall: float, user: str,
                            extra: dict[str, Any]) -> None:
        step = run.step_def
        payload = {
            "run": run.run_id,
            "procedure": run.defn.id,
            "from": src,
            "to": dest,
            "trigger": trigger,
            "step_text": step.text if step else dest,
            "held": run.held,
            "vars": _jsonable(run.vars),
            "entered_wall": wall if src != dest or trigger == "start" else run.entered_wall,
            **extra,
        }
        self._event(EventKind.PROCEDURE_TRANSITION, now, wall, run.defn.station, run.run_id, user, payload)

    def _refuse(self, actor: Actor, action: str, run_id: str, why: str, now: float, wall: float,
                reason: Refusal = Refusal.CONFLICT) -> Refused:
        self._event(EventKind.OPERATOR_ACTION, now, wall, "", run_id, actor.user,
                    {"action": action, "accepted": False, "message": why, "run": run_id}, actor.address)
        return Refused(False, why, reason=reason)

    def _event(self, kind: EventKind, now: float, wall: float, station: str, source: str, user: str,
               payload: dict[str, Any], address: str = "") -> None:
        self._events.append(Event(kind, now, wall, station, source, user, address, payload))

    def _alarms(self) -> Any:
        assert self._engine is not None, "alarms are raised during a scan"
        return self._engine.alarms

    def take_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    # -- history for rate conditions --------------------------------------------------
    def _record_history(self, snapshot: Mapping[str, Reading], now: float) -> None:
        for station, tag in self._rate_tags:
            r = snapshot.get(self.key(station, tag))
            h = self._history.setdefault((station, tag), deque(maxlen=4096))
            if r is None or not r.good or (h and now - h[-1][0] > self.stale_after_s):
                # A gap (a reading not GOOD, or no scan for longer than the staleness) breaks the trend:
                # a rate across it would describe data nobody saw, so it starts again from fresh samples.
                h.clear()
                if r is None or not r.good:
                    continue
            if not h or now - h[-1][0] >= 1.0:
                h.append((now, float(r.value)))

    def rate(self, station: str, tag: str, window_s: float, now: float) -> float | None:
        """Units per second over ``window_s`` of fresh, gap-free history; None when that is not known."""
        h = self._history.get((station, tag))
        if not h or len(h) < 2:
            return None
        t1, v1 = h[-1]
        if now - t1 > self.stale_after_s:
            return None  # the newest sample is stale: the trend is not known now
        old = [(t, v) for t, v in h if t1 - t >= window_s]
        if not old:
            return None
        t0, v0 = old[-1]
        return (v1 - v0) / (t1 - t0)

    # -- restart from the journal -------------------------------------------------------
    def restore(self, events: Iterable[Event], now: float, wall: float) -> list[Run]:
        """Rebuild the running instances from journaled transitions.

        The last transition of each run gives its step, variables and hold state;
        the step's deadline is recomputed from wall time (the monotonic clock of a
        new process starts elsewhere). The step is entered again: commands whose
        feedback already shows the target are skipped, and a confirmation that
        already holds passes at once, so the run lands where the plant is.
        """
        last: dict[str, dict[str, Any]] = {}
        for ev in events:
            if ev.kind is EventKind.PROCEDURE_TRANSITION and "run" in ev.payload:
                last[str(ev.payload["run"])] = {"payload": ev.payload, "wall": ev.t_wall}
        restored: list[Run] = []
        for run_id, item in last.items():
            p = item["payload"]
            if p["to"] in TERMINALS or p.get("procedure") not in self.defs:
                continue
            defn = self.defs[p["procedure"]]
            run = Run(defn, run_id, "restored", now, wall)
            run.machine.set_state(p["to"])
            run.vars = dict(p.get("vars") or {})
            run.held = bool(p.get("held"))
            run.hold_reason = "restored while held" if run.held else ""
            step = run.step_def
            entered_wall = float(p.get("entered_wall") or item["wall"])
            self.runs[run_id] = run
            n = int(run_id.rsplit("#", 1)[-1]) if "#" in run_id else 0
            self._seq = itertools.count(max(n + 1, next(self._seq)))
            run.pending_entry = True
            self._event(EventKind.PROCEDURE_TRANSITION, now, wall, defn.station, run_id, "",
                        {"run": run_id, "procedure": defn.id, "from": run.state, "to": run.state, "trigger": "restore",
                         "step_text": step.text if step else run.state, "held": run.held, "vars": _jsonable(run.vars),
                         "entered_wall": entered_wall})
            run._restored_elapsed = max(0.0, wall - entered_wall)  # type: ignore[attr-defined]
            restored.append(run)
        return restored


class _TriggerView(_RunView):
    def __init__(self, mgr: ProcedureManager, defn: ProcedureDef, snapshot: Mapping[str, Reading], now: float) -> None:
        self.mgr, self.snapshot, self.now = mgr, snapshot, now
        self._defn = defn

    def rate(self, tag: str, window_s: float) -> float | None:
        return self.mgr.rate(self._defn.station, tag, window_s, self.now)

    def reading(self, tag: str) -> Reading | None:
        return self.snapshot.get(self.mgr.key(self._defn.station, tag))

    def var(self, name: str) -> Any:
        return None

    def state_index(self, tag: str, state: str) -> int:
        sig = self.mgr.iolists[self._defn.station].by_tag[tag]
        assert sig.states is not None
        return sig.states.index(state)


def _conditions(d: ProcedureDef) -> list[Expr]:
    """Every condition of a procedure: confirmations, branches, command guards, interrupts, trigger."""
    out: list[Expr] = []
    for s in d.steps:
        out += [e for e in (s.confirm,) if e is not None]
        out += [e for e, _ in s.branches]
        out += [c.only_if for c in s.commands if c.only_if is not None]
    out += [it.when for it in d.interrupts]
    if d.trigger is not None:
        out.append(d.trigger)
    return out


def _rates(e: Expr) -> list[Any]:
    from .expr import All, AnyOf, Not, Rate

    if isinstance(e, Rate):
        return [e]
    if isinstance(e, All | AnyOf):
        return [r for p in e.parts for r in _rates(p)]
    if isinstance(e, Not):
        return _rates(e.part)
    return []


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, str | int | bool) or v is None:
            out[k] = v
        elif isinstance(v, float):
            out[k] = v if v == v and abs(v) != float("inf") else None
        else:
            out[k] = str(v)
    return out


def describe(defn: ProcedureDef) -> list[dict[str, Any]]:
    """The step table as data, for `plantctl procedures show` and the HMI."""
    rows = []
    for s in defn.steps:
        rows.append(
            {
                "id": s.id,
                "tag": "SRC" if s.src else "ADD",
                "actor": s.actor,
                "kind": s.kind.value,
                "text": s.text,
                "confirm": s.confirm.describe() if s.confirm else (s.task.title if s.task else ""),
                "timeout_s": s.timeout_s,
                "next": s.next,
                "on_fail": s.on_fail,
                "commands": [f"{c.tag} := {c.value}" for c in s.commands],
            }
        )
    return rows


def mermaid(defn: ProcedureDef, current: str | None = None) -> str:
    """A Mermaid stateDiagram-v2 of the procedure, drawn by transitions' GraphMachine."""
    from transitions.extensions import GraphMachine

    class _M:
        pass

    model = _M()
    gm = GraphMachine(
        model=model,
        states=[s.id for s in defn.steps] + list(TERMINALS),
        initial=current or defn.first,
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        title=f"{defn.id}: {defn.title}",
    )
    for s in defn.steps:
        seen: set[tuple[str, str]] = set()
        for trig, dest in defn.targets(s):
            if trig == "abort" or (trig, dest) in seen:
                continue
            seen.add((trig, dest))
            gm.add_transition(trig, s.id, dest)
    return str(model.get_graph().draw(None))  # type: ignore[attr-defined]


__all__ = [
    "Action",
    "Cmd",
    "Interrupt",
    "ProcedureDef",
    "ProcedureManager",
    "Recurring",
    "Refusal",
    "Refused",
    "Run",
    "Step",
    "StepKind",
    "Task",
    "Terminal",
    "describe",
    "mermaid",
    "validate",
]
