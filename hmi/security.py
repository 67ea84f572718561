"""Sessions, CSRF tokens, login throttling, permissions and two-person confirmations.

Theory of operation
-------------------
Sessions live on the server: the cookie carries only a random 256-bit token
(HttpOnly, SameSite=Strict, Secure and ``__Host-`` prefixed under HTTPS). A
login always issues a *new* token, whatever cookie the browser sent, so a token
planted before login (session fixation) is never promoted. Each session has its
own CSRF token, returned by the login and ``GET /api/session`` answers; every
state-changing request must carry it in ``X-CSRF-Token`` (compared in constant
time). SameSite=Strict already keeps other sites' requests cookie-less; the
token is the second, independent lock.

The session stores only the user name: roles are looked up in the users file at
every request, so ``plantctl user disable`` or a role change applies at once,
and a disabled user's sessions are dropped.

Login throttling counts failures per user name and per client address in a
sliding window. Past the limit the name (or the address) is locked for a while:
even the right password is refused until the lock expires (``429`` with
``Retry-After``). The lock is timed, not permanent, because an operator locked
out for good during an emergency is a hazard of its own; an admin can lift it.

Critical actions (trip reset, bypass, force, override, procedure abort,
restoring gas supply) are not executed when asked: they become a *pending
confirmation* that a second, different user with a permitted role must confirm
within ``ttl`` (two minutes). Only then is the action executed, with the
engine's ``confirmed_by`` set to the second person, so both names reach the
journal.

Time here is the HMI's own clock (``plantctl.clock.RealClock`` by default, a
``VirtualClock`` in tests), never the plant's: security deadlines are wall-clock
matters even when the plant runs in virtual time.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from plantctl.engine import DEFAULT_PERMISSIONS, Action, Actor, Outcome, Role

ALL_ROLES: frozenset[Role] = frozenset(Role)


class ClockLike(Protocol):
    def now(self) -> float: ...

    def wall(self) -> float: ...


class Perm(StrEnum):
    """What a request does, for the role check (the engine checks again on its side)."""

    VIEW = "view"
    ACK = "ack"
    SHELVE = "shelve"
    COMMAND = "command"
    RESET = "reset"
    BYPASS = "bypass"
    OVERRIDE = "override"
    FORCE = "force"
    PROCEDURE = "procedure"  # start, hold, resume, abort (ProcedureManager: operator or supervisor)
    ANSWER = "answer"  # answer a procedure task (the manager checks the task's own role)
    FAULTS = "faults"  # the simulator's fault-injection panel
    USERS = "users"  # user administration
    SELF = "self"  # own password, logout


def permissions(engine_permissions: dict[Action, frozenset[Role]] | None = None) -> dict[Perm, frozenset[Role]]:
    """The HMI's permission table; engine actions come from the engine's own table."""
    ep = engine_permissions or DEFAULT_PERMISSIONS
    ops = frozenset({Role.OPERATOR, Role.SUPERVISOR})
    return {
        Perm.VIEW: ALL_ROLES,
        Perm.SELF: ALL_ROLES,
        Perm.ACK: ep[Action.ACK],
        Perm.SHELVE: ops,
        Perm.COMMAND: ep[Action.COMMAND],
        Perm.RESET: ep[Action.RESET],
        Perm.BYPASS: ep[Action.BYPASS],
        Perm.OVERRIDE: ep[Action.OVERRIDE],
        Perm.FORCE: ep[Action.FORCE],
        Perm.PROCEDURE: ops,
        Perm.ANSWER: frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ENGINEER}),
        Perm.FAULTS: frozenset({Role.ENGINEER}),
        Perm.USERS: frozenset({Role.ADMIN}),
    }


# -- sessions ---------------------------------------------------------------------------------


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    address: str
    created: float
    last_seen: float


class SessionStore:
    def __init__(self, clock: ClockLike, *, idle_s: float = 8 * 3600.0, absolute_s: float = 14 * 3600.0) -> None:
        self.clock = clock
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self._by_token: dict[str, Session] = {}

    def create(self, user: str, address: str) -> Session:
        now = self.clock.now()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), address, now, now)
        self._by_token[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        s = self._by_token.get(token)
        if s is None:
            return None
        now = self.clock.now()
        if now - s.last_seen > self.idle_s or now - s.created > self.absolute_s:
            del self._by_token[token]
            return None
        s.last_seen = now
        return s

    def peek(self, token: str) -> Session | None:
        """The session without touching its idle timer (for the WebSocket's periodic check)."""
        s = self._by_token.get(token)
        if s is None:
            return None
        now = self.clock.now()
        if now - s.last_seen > self.idle_s or now - s.created > self.absolute_s:
            return None
        return s

    def drop(self, token: str) -> None:
        self._by_token.pop(token, None)

    def drop_user(self, user: str, *, keep: str | None = None) -> int:
        gone = [t for t, s in self._by_token.items() if s.user == user and t != keep]
        for t in gone:
            del self._by_token[t]
        return len(gone)

    def __len__(self) -> int:
        return len(self._by_token)


def csrf_ok(session: Session, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(session.csrf.encode(), (header or "").encode())


# -- login throttling -----------------------------------------------------------------------


@dataclass
class ThrottleSettings:
    window_s: float = 900.0  # failures counted over this window
    max_user_failures: int = 5  # then the user name is locked
    max_address_failures: int = 20  # then the client address is locked
    lockout_s: float = 300.0


class LoginThrottle:
    def __init__(self, clock: ClockLike, settings: ThrottleSettings | None = None) -> None:
        self.clock = clock
        self.settings = settings or ThrottleSettings()
        self._fails: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}  # key -> until

    def _key_user(self, user: str) -> str:
        return "u:" + user.lower()

    def _key_addr(self, address: str) -> str:
        return "a:" + address

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until a login may be tried again (0: allowed now)."""
        now = self.clock.now()
        waits = [until - now for k in (self._key_user(user), self._key_addr(address))
                 if (until := self._locked.get(k)) is not None and until > now]
        return max(waits, default=0.0)

    def failed(self, user: str, address: str) -> bool:
        """Record a failure; True when it locked the user name or the address."""
        now = self.clock.now()
        locked = False
        for key, limit in ((self._key_user(user), self.settings.max_user_failures),
                           (self._key_addr(address), self.settings.max_address_failures)):
            q = self._fails.setdefault(key, deque())
            q.append(now)
            while q and now - q[0] > self.settings.window_s:
                q.popleft()
            if len(q) >= limit:
                self._locked[key] = now + self.settings.lockout_s
                q.clear()
                locked = True
        return locked

    def succeeded(self, user: str) -> None:
        self._fails.pop(self._key_user(user), None)

    def unlock(self, user: str) -> None:
        self._locked.pop(self._key_user(user), None)
        self._fails.pop(self._key_user(user), None)

    def locked_users(self) -> dict[str, float]:
        now = self.clock.now()
        return {k[2:]: round(u - now, 1) for k, u in self._locked.items() if k.startswith("u:") and u > now}


# -- two-person confirmations -----------------------------------------------------------------


class ConfirmError(Exception):
    """A confirmation was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


Executor = Callable[[Actor, Actor | None], Outcome]  # (requester, confirmer)


@dataclass
class Pending:
    id: str
    kind: str  # reset | bypass | override | force | abort | restore
    summary: str
    requested_by: Actor
    roles: frozenset[Role]  # who may confirm
    created: float
    expires: float
    created_wall: float
    execute: Executor = field(repr=False)
    params: dict[str, Any] = field(default_factory=dict)

    def public(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "summary": self.summary,
            "requested_by": self.requested_by.user,
            "confirm_roles": sorted(r.value for r in self.roles),
            "expires_wall": round(self.created_wall + (self.expires - self.created), 3),
            "requested_wall": self.created_wall,
            "params": self.params,
        }


class PendingStore:
    def __init__(self, clock: ClockLike, ttl_s: float = 120.0) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self._items: dict[str, Pending] = {}
        self._ids = itertools.count(1)

    def create(self, kind: str, summary: str, requester: Actor, roles: frozenset[Role], execute: Executor,
               params: dict[str, Any] | None = None) -> Pending:
        now = self.clock.now()
        pid = f"{next(self._ids)}-{secrets.token_hex(4)}"
        p = Pending(pid, kind, summary, requester, roles, now, now + self.ttl_s, self.clock.wall(), execute,
                    dict(params or {}))
        self._items[pid] = p
        return p

    def expire(self) -> list[Pending]:
        now = self.clock.now()
        gone = [p for p in self._items.values() if now >= p.expires]
        for p in gone:
            del self._items[p.id]
        return gone

    def take_for_confirm(self, pid: str, confirmer: Actor) -> Pending:
        """Check the confirmer and remove the item (an item is confirmed at most once)."""
        self.expire()
        p = self._items.get(pid)
        if p is None:
            raise ConfirmError("no such pending request (expired, confirmed or cancelled)", 404)
        if confirmer.user == p.requested_by.user:
            raise ConfirmError("the confirming person must be a different user", 403)
        if not confirmer.roles & p.roles:
            raise ConfirmError(f"{confirmer.user} may not confirm {p.kind} (role)", 403)
        del self._items[pid]
        return p

    def cancel(self, pid: str, actor: Actor) -> Pending:
        """The requester withdraws, or a permitted user declines."""
        p = self._items.get(pid)
        if p is None:
            raise ConfirmError("no such pending request", 404)
        if actor.user != p.requested_by.user and not actor.roles & p.roles:
            raise ConfirmError(f"{actor.user} may not decline {p.kind} (role)", 403)
        del self._items[pid]
        return p

    def items(self) -> list[Pending]:
        return sorted(self._items.values(), key=lambda p: p.created)

    def public(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [p.public(now) for p in self.items()]
