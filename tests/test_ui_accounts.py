"""UI users and server-side sessions, on SQLite and PostgreSQL (the browser tests in
tests/test_ui.py drive the same functions through a real server)."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from ridgeline.cli import main
from ridgeline.errors import BadInput, Conflict, NotFound
from ridgeline.service.keys import Principal, create_key, revoke_key
from ridgeline.store import Store
from ridgeline.timeutil import utcnow
from ridgeline.ui import accounts
from ridgeline.ui.models import UiLoginFailure, UiSession, UiUser

PASSWORD = "correct horse battery staple"


def test_users_are_checked_and_stored_as_argon2(store: Store) -> None:
    with store.session() as s:
        with pytest.raises(BadInput, match="at least 12"):
            accounts.add_user(s, "pat", "analyst", "short")
        with pytest.raises(BadInput, match="unknown role"):
            accounts.add_user(s, "pat", "wizard", PASSWORD)
        with pytest.raises(BadInput, match="needs a name"):
            accounts.add_user(s, "  ", "analyst", PASSWORD)
        user = accounts.add_user(s, "pat", "analyst", PASSWORD)
        with pytest.raises(Conflict, match="exists already"):
            accounts.add_user(s, "pat", "curator", PASSWORD)
        stored = s.scalar(select(UiUser).where(UiUser.name == "pat"))
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
        assert accounts.check_password(s, "pat", PASSWORD) == user
        assert accounts.check_password(s, "pat", PASSWORD + "x") is None
        assert accounts.check_password(s, "nobody", PASSWORD) is None
        assert "password" not in str(user.to_json())


def test_sessions_expire_end_and_follow_their_user_or_key(store: Store) -> None:
    now = utcnow()
    with store.session() as s:
        user = accounts.add_user(s, "pat", "reviewer", PASSWORD)
        token = accounts.start_session(s, user=user, minutes=30, now=now)
        live = accounts.load_session(s, token, now=now + dt.timedelta(minutes=29))
        assert live is not None and live.name == "pat" and live.role == "reviewer"
        assert live.actor == "user:pat" and len(live.csrf) >= 32
        assert accounts.load_session(s, token, now=now + dt.timedelta(minutes=31)) is None
        assert accounts.load_session(s, token + "x", now=now) is None
        # the token itself is never stored, only its SHA-256
        assert s.get(UiSession, token) is None
        assert s.get(UiSession, accounts.token_id(token)) is not None
        accounts.end_session(s, accounts.token_id(token))
        assert accounts.load_session(s, token, now=now) is None
        # disabling a user ends their sessions and refuses their password
        again = accounts.start_session(s, user=user, now=now)
        accounts.disable_user(s, "pat")
        assert accounts.load_session(s, again, now=now) is None
        assert accounts.check_password(s, "pat", PASSWORD) is None
        with pytest.raises(NotFound):
            accounts.disable_user(s, "nobody")
        # a session made with an API key ends when the key is revoked
        key, _ = create_key(s, "kim", "auditor")
        principal = Principal(key.id, key.name, key.role, None)
        by_key = accounts.start_session(s, principal=principal, now=now)
        live = accounts.load_session(s, by_key, now=now)
        assert live is not None and live.actor == "key:kim" and live.role == "auditor"
        revoke_key(s, key.id)
        assert accounts.load_session(s, by_key, now=now) is None
        with pytest.raises(ValueError):
            accounts.start_session(s)


def test_users_cli(sqlite_store: Store) -> None:
    db = sqlite_store.url
    runner = CliRunner()
    added = runner.invoke(
        main,
        ["users", "add", "pat", "--role", "curator", "--db", db, "--format", "json"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert added.exit_code == 0, added.output
    assert '"role": "curator"' in added.output and PASSWORD not in added.output
    short = runner.invoke(main, ["users", "add", "sam", "--role", "curator", "--db", db,
                                 "--password", "short"])  # fmt: skip
    assert short.exit_code == 2 and "at least 12" in short.output
    listed = runner.invoke(main, ["users", "ls", "--db", db, "--format", "json"])
    assert '"pat"' in listed.output and "disabled_at" in listed.output
    gone = runner.invoke(main, ["users", "disable", "pat", "--db", db, "--format", "json"])
    assert gone.exit_code == 0 and '"disabled_at": null' not in gone.output
    missing = runner.invoke(main, ["users", "disable", "nobody", "--db", db])
    assert missing.exit_code != 0 and "no UI user" in missing.output


def test_login_throttle_refuses_after_failures_until_the_window_passes(store: Store) -> None:
    """Failures are counted in the database, so every worker refuses the same name."""
    throttle = accounts.LoginThrottle(failures=3, window_s=60)
    with store.session() as s:
        for n in range(3):
            assert throttle.wait(s, "Pat", now=100.0 + n) == 0
            throttle.failed(s, "Pat", now=100.0 + n)
    with store.session() as s:  # another worker's view: the same rows
        assert throttle.wait(s, "pat ", now=110.0) == pytest.approx(50.0)  # names fold
        assert throttle.wait(s, "other", now=110.0) == 0
        assert throttle.wait(s, "pat", now=160.0) == 0  # the window has passed
        throttle.failed(s, "pat", now=161.0)
        assert throttle.wait(s, "pat", now=161.0) == 0  # a new window, one failure
        throttle.succeeded(s, "pat")
        assert s.scalar(select(func.count()).select_from(UiLoginFailure)) == 0


def test_every_ui_page_names_a_policy_and_no_template_inlines_code() -> None:
    """Each page's permission is one of POLICY's (or the UI's own, or public / any
    session), only the login page is public, and no template carries inline script,
    inline style or event-handler attributes (the CSP would block them)."""
    import re
    from importlib.resources import files

    from ridgeline.service.auth import POLICY
    from ridgeline.ui.app import PAGES
    from ridgeline.ui.web import PUBLIC, SESSION, UI_POLICY

    assert len(PAGES) >= 25
    for p in PAGES:
        assert p.permission in {*POLICY, *UI_POLICY, PUBLIC, SESSION}, p
        assert (p.permission == PUBLIC) == (p.path == "/login"), p
    templates = [
        t for t in (files("ridgeline.ui") / "templates").iterdir() if t.name.endswith(".html")
    ]
    assert len(templates) >= 20
    for t in templates:
        text = t.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), t.name
        assert not re.search(r"\sstyle=|<style", text), t.name
        assert not re.search(r"\son[a-z]+=", text), t.name
        assert "http://" not in text and "https://" not in text, t.name  # no CDN
