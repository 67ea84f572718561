"""plantctl.auth: the users file, argon2id hashes and `plantctl user` (lives here with the HMI tests)."""

from __future__ import annotations

import argparse
import io
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from plantctl.auth import AuthError, UserExists, UserStore, WeakPassword, add_cli, parse_roles
from plantctl.engine import Role
from plantctl.errors import ConfigError

H = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def test_add_hashes_with_argon2id_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    store = UserStore(path, hasher=H)
    store.add("alice", parse_roles("operator,supervisor"), "correct-horse-battery")
    text = path.read_text()
    assert "correct-horse-battery" not in text and "$argon2id$" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = UserStore.load(path, hasher=H)
    u = again.authenticate("alice", "correct-horse-battery")
    assert u is not None and u.roles == {Role.OPERATOR, Role.SUPERVISOR}
    assert again.authenticate("alice", "wrong-horse-battery") is None
    assert again.authenticate("nobody", "correct-horse-battery") is None


def test_no_default_users_and_weak_passwords_refused(tmp_path: Path) -> None:
    store = UserStore.load(tmp_path / "missing.yaml", hasher=H)
    assert len(store) == 0 and store.authenticate("admin", "admin") is None
    with pytest.raises(WeakPassword):
        store.add("bob", parse_roles("viewer"), "short")
    with pytest.raises(WeakPassword):
        store.add("bob", parse_roles("viewer"), "bob-is-my-password")
    with pytest.raises(AuthError):
        store.add("Bad Name", parse_roles("viewer"), "long-enough-secret-1")
    with pytest.raises(AuthError):
        parse_roles("wizard")
    store.add("bob", parse_roles("viewer"), "long-enough-secret-1")
    with pytest.raises(UserExists):
        store.add("bob", parse_roles("viewer"), "long-enough-secret-1")


def test_disable_passwd_roles_and_the_last_admin(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "u.yaml", hasher=H)
    store.add("root1", parse_roles("admin"), "long-enough-secret-1")
    store.add("op", parse_roles("operator"), "long-enough-secret-2")
    with pytest.raises(AuthError):
        store.set_disabled("root1", True)
    with pytest.raises(AuthError):
        store.set_roles("root1", parse_roles("viewer"))
    store.set_disabled("op", True)
    assert store.authenticate("op", "long-enough-secret-2") is None
    store.set_disabled("op", False)
    store.passwd("op", "another-long-secret-3")
    assert store.authenticate("op", "long-enough-secret-2") is None
    assert store.authenticate("op", "another-long-secret-3") is not None


def test_a_broken_users_file_names_file_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "u.yaml"
    p.write_text("version: 1\nusers:\n  - name: eve\n    roles: [operator]\n    hash: plaintext\n")
    with pytest.raises(ConfigError) as err:
        UserStore.load(p, hasher=H)
    assert f"{p}:3: users[0].hash" in str(err.value)


def test_old_parameters_are_rehashed_on_login(tmp_path: Path) -> None:
    p = tmp_path / "u.yaml"
    UserStore(p, hasher=H).add("carl", parse_roles("viewer"), "long-enough-secret-1")
    stronger = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)
    store = UserStore.load(p, hasher=stronger)
    assert store.authenticate("carl", "long-enough-secret-1") is not None
    assert "t=2" in UserStore.load(p, hasher=stronger).get("carl").password_hash  # type: ignore[union-attr]


def _cli(argv: list[str], stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return int(args.func(args))


def test_the_user_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(tmp_path / "users.yaml")
    assert _cli(["user", "add", "dana", "--role", "operator", "--file", f, "--password-stdin"],
                "long-enough-secret-1\n", monkeypatch) == 0
    assert _cli(["user", "add", "erin", "--role", "admin", "--file", f, "--generate"]) == 0
    out = capsys.readouterr().out
    assert "password (shown once):" in out
    assert _cli(["user", "passwd", "dana", "--file", f, "--password-stdin"], "short\n", monkeypatch) == 2
    assert _cli(["user", "disable", "dana", "--file", f]) == 0
    assert _cli(["user", "list", "--file", f]) == 0
    out = capsys.readouterr().out
    assert "dana" in out and "disabled" in out and "erin" in out
    assert UserStore.load(f).get("dana").disabled  # type: ignore[union-attr]
    assert _cli(["user", "disable", "erin", "--file", f]) == 2  # the last admin
