"""Users, roles and password hashes: the users file behind the HMI and ``plantctl user``.

Theory of operation
-------------------
A site names one YAML users file. Each entry is a user name, its roles (the
engine's ``Role``: viewer, operator, supervisor, engineer, admin; a person may
hold several), an argon2id hash of the password and a ``disabled`` flag. There
is no default user and no default password: an empty or missing file lets
nobody in, and ``plantctl user add`` is the only way to create the first admin.

Hashes are argon2id (argon2-cffi's RFC 9106 low-memory profile by default). The
parameters travel inside each hash, so a stronger profile applies to new and
changed passwords, and ``authenticate`` re-hashes an old-profile hash on the
next successful login. ``authenticate`` costs one argon2 verification whether
or not the user exists or is disabled (a dummy hash is verified otherwise), so
the answer time does not tell an attacker which names are real.

The file is written atomically (a temporary file in the same folder, fsynced,
mode 0600, then renamed over the old one), so a crash never leaves half a users
file; the HMI reloads it when its modification time changes, so ``plantctl
user disable`` takes effect on a running HMI at the next request. Throttling,
lockout and sessions are the HMI's business (hmi.security); this module only
knows who exists and whether a password is right.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import secrets
import sys
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .engine import Actor, Role
from .errors import ConfigError, PlantctlError
from .yamlio import LineDict, LineList, line_of, load_yaml

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "AuthError",
    "UnknownUser",
    "User",
    "UserExists",
    "UserStore",
    "WeakPassword",
    "add_cli",
    "check_password",
    "parse_roles",
]

MIN_PASSWORD_LENGTH = 12
FILE_VERSION = 1
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
_HEADER = (
    "# plantctl users. Managed with `plantctl user add|passwd|disable|enable|roles` (see docs/users.md).\n"
    "# Passwords are stored only as argon2id hashes. Do not edit by hand while an HMI writes it.\n"
)


class AuthError(PlantctlError):
    """A users-file operation was refused."""


class UnknownUser(AuthError, LookupError):
    pass


class UserExists(AuthError):
    pass


class WeakPassword(AuthError, ValueError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[Role]
    password_hash: str = field(repr=False)
    disabled: bool = False
    created: str = ""
    changed: str = ""

    def actor(self, address: str = "") -> Actor:
        """The engine's view of this user acting from ``address``."""
        return Actor(self.name, self.roles, address)

    def has_any(self, roles: frozenset[Role] | set[Role]) -> bool:
        return bool(self.roles & roles)


def parse_roles(values: list[str] | tuple[str, ...] | str) -> frozenset[Role]:
    """Roles from names ("operator", or "operator,supervisor"); AuthError names a wrong one."""
    items = [values] if isinstance(values, str) else list(values)
    out: set[Role] = set()
    for item in items:
        for part in str(item).split(","):
            name = part.strip().lower()
            if not name:
                continue
            try:
                out.add(Role(name))
            except ValueError:
                known = ", ".join(r.value for r in Role)
                raise AuthError(f"unknown role {name!r} (known: {known})") from None
    if not out:
        raise AuthError("a user needs at least one role")
    return frozenset(out)


def check_password(name: str, password: str) -> None:
    """Refuse a password that is too short or built from the user name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if name and name.lower() in password.lower():
        raise WeakPassword("a password must not contain the user name")
    if len(set(password)) < 4:
        raise WeakPassword("a password needs at least 4 different characters")


def _iso(wall: float | None) -> str:
    if wall is None:
        return ""
    return datetime.fromtimestamp(wall, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class UserStore:
    """The users of one site, backed by a YAML file (or by nothing, in tests)."""

    def __init__(self, path: str | Path | None = None, *, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.hasher = hasher or PasswordHasher()
        self._users: dict[str, User] = {}
        self._mtime: int | None = None
        # verified when the user does not exist, so a wrong name costs what a wrong password costs
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    # -- file ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, hasher: PasswordHasher | None = None, missing_ok: bool = True) -> UserStore:
        store = cls(path, hasher=hasher)
        store.reload(missing_ok=missing_ok)
        return store

    def reload(self, *, missing_ok: bool = True) -> None:
        assert self.path is not None
        if not self.path.exists():
            if not missing_ok:
                raise ConfigError(f"{self.path}:1: file: users file not found (create it with `plantctl user add`)")
            self._users, self._mtime = {}, None
            return
        self._mtime = self.path.stat().st_mtime_ns
        self._users = _parse(self.path)

    def reload_if_changed(self) -> bool:
        """Re-read the file when another process (the CLI) changed it; True when reloaded."""
        if self.path is None:
            return False
        try:
            mtime: int | None = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return False
        self.reload()
        return True

    def save(self) -> None:
        if self.path is None:
            return
        doc: dict[str, Any] = {
            "version": FILE_VERSION,
            "users": [
                {
                    "name": u.name,
                    "roles": sorted(r.value for r in u.roles),
                    "hash": u.password_hash,
                    "disabled": u.disabled,
                    "created": u.created,
                    "changed": u.changed,
                }
                for u in sorted(self._users.values(), key=lambda u: u.name)
            ],
        }
        text = _HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=200)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users-", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._mtime = self.path.stat().st_mtime_ns

    # -- queries ------------------------------------------------------------------------
    def get(self, name: str) -> User | None:
        return self._users.get(name)

    def users(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.name)

    def __contains__(self, name: object) -> bool:
        return name in self._users

    def __len__(self) -> int:
        return len(self._users)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password is right and the account enabled; else None."""
        user = self._users.get(name)
        target = user.password_hash if user is not None else self._dummy
        try:
            self.hasher.verify(target, password)
            ok = user is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or user is None or user.disabled:
            return None
        if self.hasher.check_needs_rehash(user.password_hash):
            user = replace(user, password_hash=self.hasher.hash(password))
            self._users[name] = user
            self.save()
        return user

    # -- changes ------------------------------------------------------------------------
    def add(self, name: str, roles: frozenset[Role], password: str, *, wall: float | None = None) -> User:
        if not _NAME.match(name):
            raise AuthError(f"user name {name!r}: use 2-32 characters a-z 0-9 . _ -, starting with a letter")
        if name in self._users:
            raise UserExists(f"user {name} already exists")
        if not roles:
            raise AuthError("a user needs at least one role")
        check_password(name, password)
        user = User(name, frozenset(roles), self.hasher.hash(password), False, _iso(wall), _iso(wall))
        self._users[name] = user
        self.save()
        return user

    def _require(self, name: str) -> User:
        user = self._users.get(name)
        if user is None:
            raise UnknownUser(f"no user {name}")
        return user

    def passwd(self, name: str, password: str, *, wall: float | None = None) -> User:
        user = self._require(name)
        check_password(name, password)
        user = replace(user, password_hash=self.hasher.hash(password), changed=_iso(wall))
        self._users[name] = user
        self.save()
        return user

    def set_disabled(self, name: str, disabled: bool, *, wall: float | None = None) -> User:
        user = self._require(name)
        if disabled and not user.disabled and Role.ADMIN in user.roles and self._admins() == [name]:
            raise AuthError(f"{name} is the last enabled admin; add another admin first")
        user = replace(user, disabled=disabled, changed=_iso(wall))
        self._users[name] = user
        self.save()
        return user

    def set_roles(self, name: str, roles: frozenset[Role], *, wall: float | None = None) -> User:
        user = self._require(name)
        if not roles:
            raise AuthError("a user needs at least one role")
        if Role.ADMIN in user.roles and Role.ADMIN not in roles and self._admins() == [name]:
            raise AuthError(f"{name} is the last enabled admin; add another admin first")
        user = replace(user, roles=frozenset(roles), changed=_iso(wall))
        self._users[name] = user
        self.save()
        return user

    def _admins(self) -> list[str]:
        return [u.name for u in self._users.values() if Role.ADMIN in u.roles and not u.disabled]


def _parse(path: Path) -> dict[str, User]:
    doc = load_yaml(path)
    if doc is None:
        return {}
    if not isinstance(doc, LineDict):
        raise ConfigError(f"{path}:1: file: expected a mapping with 'version' and 'users'")
    errors: list[str] = []
    if doc.get("version", FILE_VERSION) != FILE_VERSION:
        errors.append(f"{path}:{line_of(doc, ['version'])}: version: unsupported users-file version {doc.get('version')!r}")
    raw = doc.get("users") or LineList()
    if not isinstance(raw, list):
        raise ConfigError(f"{path}:{line_of(doc, ['users'])}: users: expected a list")
    users: dict[str, User] = {}
    for i, entry in enumerate(raw):
        where = f"{path}:{line_of(doc, ['users', i])}: users[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{where}: expected a mapping")
            continue
        name = str(entry.get("name", ""))
        if not _NAME.match(name):
            errors.append(f"{where}.name: invalid user name {name!r}")
            continue
        if name in users:
            errors.append(f"{where}.name: duplicate user {name}")
            continue
        try:
            roles = parse_roles([str(r) for r in entry.get("roles") or []])
        except AuthError as exc:
            errors.append(f"{where}.roles: {exc}")
            continue
        hashed = str(entry.get("hash", ""))
        if not hashed.startswith("$argon2id$"):
            errors.append(f"{where}.hash: not an argon2id hash (set it with `plantctl user passwd {name}`)")
            continue
        users[name] = User(
            name,
            roles,
            hashed,
            bool(entry.get("disabled", False)),
            str(entry.get("created") or ""),
            str(entry.get("changed") or ""),
        )
    if errors:
        raise ConfigError(errors)
    return users


# -- command line ---------------------------------------------------------------------------


def _users_path(args: argparse.Namespace) -> Path:
    if args.file:
        return Path(args.file)
    if args.site:
        from .site import load_site

        site = load_site(args.site)
        if site.users_path is None:
            raise AuthError(f"{args.site}: the site file names no users file (add `users: PATH`)")
        return site.users_path
    env = os.environ.get("PLANTCTL_USERS")
    if env:
        return Path(env)
    raise AuthError("name the users file: --file PATH, --site SITE or $PLANTCTL_USERS")


def _read_password(args: argparse.Namespace, name: str) -> tuple[str, bool]:
    """(password, generated): from stdin, generated, or typed twice on the terminal."""
    if args.generate:
        return secrets.token_urlsafe(15), True
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    first = getpass.getpass(f"password for {name}: ")
    second = getpass.getpass("again: ")
    if first != second:
        raise AuthError("the two passwords differ")
    return first, False


def _wall() -> float:
    from .clock import RealClock

    return RealClock().wall()


def _cmd(args: argparse.Namespace) -> int:
    try:
        path = _users_path(args)
        store = UserStore.load(path)
        action = args.user_command
        if action == "list":
            for u in store.users():
                state = "disabled" if u.disabled else "enabled"
                print(f"{u.name:<16} {state:<9} {','.join(sorted(r.value for r in u.roles))}")
            return 0
        name = args.name
        if action == "add":
            password, generated = _read_password(args, name)
            user = store.add(name, parse_roles(args.role), password, wall=_wall())
            print(f"{path}: added {user.name} ({', '.join(sorted(r.value for r in user.roles))})")
            if generated:
                print(f"password (shown once): {password}")
        elif action == "passwd":
            store._require(name)
            password, generated = _read_password(args, name)
            store.passwd(name, password, wall=_wall())
            print(f"{path}: password of {name} changed")
            if generated:
                print(f"password (shown once): {password}")
        elif action in ("disable", "enable"):
            store.set_disabled(name, action == "disable", wall=_wall())
            print(f"{path}: {name} {action}d")
        elif action == "roles":
            user = store.set_roles(name, parse_roles(args.role), wall=_wall())
            print(f"{path}: {name} now has {', '.join(sorted(r.value for r in user.roles))}")
        return 0
    except AuthError as exc:
        print(f"plantctl user: {exc}", file=sys.stderr)
        return 2


def add_cli(subparsers: Any) -> None:
    """Register ``plantctl user add|passwd|disable|enable|roles|list``."""
    p = subparsers.add_parser(
        "user",
        help="manage HMI users (add, passwd, disable, enable, roles, list)",
        description="Manage the users file of a site. Roles: " + ", ".join(r.value for r in Role) + ". "
        "Passwords are stored as argon2id hashes; there are no default users or passwords.",
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("-f", "--file", help="users file (YAML)")
    where.add_argument("--site", help="site file whose `users:` names the users file")
    secret = argparse.ArgumentParser(add_help=False)
    secret.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    secret.add_argument("--generate", action="store_true", help="generate a random password and print it once")
    sub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    a = sub.add_parser("add", parents=[where, secret], help="add a user")
    a.add_argument("name")
    a.add_argument("--role", action="append", required=True, help="a role (repeat, or comma-separated)")
    pw = sub.add_parser("passwd", parents=[where, secret], help="set a user's password")
    pw.add_argument("name")
    for action, text in (("disable", "disable a user (the HMI ends their sessions)"), ("enable", "enable a user again")):
        d = sub.add_parser(action, parents=[where], help=text)
        d.add_argument("name")
    r = sub.add_parser("roles", parents=[where], help="replace a user's roles")
    r.add_argument("name")
    r.add_argument("--role", action="append", required=True)
    sub.add_parser("list", parents=[where], help="list users and their roles")
    p.set_defaults(func=_cmd)
