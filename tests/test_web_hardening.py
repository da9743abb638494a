"""Nothing wrong gets in, nothing private gets out: input that once made a 500, ids that
could be probed across trials, concurrent creates, log-in throttling, sessions, start-up
checks, file modes, response headers and durability settings."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from trialdesk.protocol.load import default_protocol_dir

EXAMPLES = default_protocol_dir().parent / "examples" / "patients"
RECORD = json.loads((EXAMPLES / "nb-relapsed.json").read_text())


def _api(client: Any) -> dict[str, str]:
    return {"x-csrf-token": client.csrf}


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("reason", ["\x1c", "\x1d\x1e\x1f", "  \x1f ", "late\x07entry"])
def test_a_reason_of_control_characters_is_refused_on_the_api_and_the_pages(
        web: Any, reason: str) -> None:
    c = web.client("coordinator", raise_errors=False)
    r = c.post("/api/patients", headers=_api(c), json={
        "trial_id": "NB-NK-2026", "site": "Moscow", "record": RECORD, "reason": reason})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "$.body.reason"
    page = c.post("/patients", headers={"accept": "text/html"}, follow_redirects=False, data={
        "csrf_token": c.csrf, "trial_id": "NB-NK-2026", "site": "Moscow", "reason": reason,
        "record_json": json.dumps(RECORD)})
    assert page.status_code == 422 and "reason" in page.text


def test_a_reason_with_separators_inside_is_kept_as_written(web: Any) -> None:
    c = web.client("coordinator")
    r = c.post("/api/patients", headers=_api(c), json={
        "trial_id": "NB-NK-2026", "site": "Moscow", "record": RECORD, "reason": "a\tb\nc"})
    assert r.status_code == 201
    [entry] = web.store.audit_entries(record_id=r.json()["study_number"]).items
    assert entry.reason == "a\tb\nc"


@pytest.mark.parametrize("number", ["9223372036854775808", "9223372036854775807", "2147483648",
                                    "99999999999999999999999999"])
def test_a_huge_version_number_is_a_422_without_log_in(web: Any, number: str) -> None:
    r = web.client(raise_errors=False).get(f"/api/trials/NB-NK-2026/versions/{number}")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "$.path.number"


def test_huge_ids_in_paths_and_bodies_are_422(web: Any) -> None:
    c = web.client("investigator", raise_errors=False)
    big = 2**63
    r = c.put(f"/api/patients/NBNK-0001/adverse-events/{big}", headers=_api(c),
              json={"version": 1, "reason": "x"})
    assert r.status_code == 422
    r = c.post("/api/patients/NBNK-0002/enrolment", headers=_api(c),
               json={"screening_id": big, "password": "x", "reason": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "$.body.screening_id"


def test_an_upload_nested_100000_levels_is_a_422(web: Any) -> None:
    from trialdesk.web.app import create_app
    from trialdesk.web.settings import Settings

    web.settings = Settings(database_url=web.settings.database_url, secret_key="t" * 40)
    web.app = create_app(web.settings, web.store)
    c = web.client("coordinator", raise_errors=False)
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    page = c.post("/screen", headers={"accept": "text/html"},
                  data={"csrf_token": c.csrf, "trial_id": "NB-NK-2026", "as_of": "2026-11-21T12:00"},
                  files={"file": ("patient.json", deep, "application/json")})
    assert page.status_code == 422 and "nested too deeply" in page.text
    r = c.post("/api/screen", headers={**_api(c), "content-type": "application/json"},
               content=deep)
    assert 400 <= r.status_code < 500


# ---------------------------------------------------------------------------- ids across trials


def test_another_trials_adverse_event_answers_like_a_missing_one(web: Any) -> None:
    """An NB-NK-2026 adverse event asked for under the RuMCeSS patient, by an investigator
    of both trials: the same 404 as an id that does not exist."""
    c = web.client("investigator", raise_errors=False)
    ae = web.store.adverse_events("NBNK-0001")[0]
    other = web.store.patients([("RuMCeSS", None)]).items[0].study_number
    body = {"version": ae.version, "outcome": "recovered", "reason": "follow-up"}

    def put(ae_id: int) -> Any:
        return c.put(f"/api/patients/{other}/adverse-events/{ae_id}", headers=_api(c), json=body)

    foreign, missing = put(ae.id), put(999_999)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == {**missing.json(), "error": missing.json()["error"].replace(
        "999999", str(ae.id))}
    assert foreign.json()["error"] == f"no adverse event {ae.id} of patient {other}"


# ---------------------------------------------------------------------------- concurrent creates


def test_concurrent_patient_creates_all_succeed(database_url: str) -> None:
    from trialdesk.facts.patient import PatientRecord
    from trialdesk.services.accounts import Principal
    from trialdesk.services.context import Services
    from trialdesk.services.demo import import_protocols
    from trialdesk.services.patients import create_patient
    from trialdesk.store import Store

    store = Store.open(database_url)
    try:
        import_protocols(store, default_protocol_dir())
        store.add_user("coord", "Coordinator", "x", actor="test", reason="test user")
        store.add_membership("coord", "NB-NK-2026", "coordinator", actor="test", reason="test")
        user = store.user_by_name("coord")
        assert user is not None
        who = Principal(user, tuple(store.memberships(user.id)))
        ctx = Services.open(store)
        record = PatientRecord.model_validate(RECORD)
        made: list[str] = []
        failed: list[Exception] = []
        barrier = threading.Barrier(6)

        def create() -> None:
            barrier.wait()
            for _ in range(4):
                try:
                    row = create_patient(ctx, who, trial_id="NB-NK-2026", site="Moscow",
                                         record=record, identifiers={}, reason="referred")
                    made.append(row.study_number)
                except Exception as exc:  # collected and asserted below
                    failed.append(exc)

        threads = [threading.Thread(target=create) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failed == []
        assert sorted(made) == [f"NBNK-{n:04d}" for n in range(1, 25)]
        assert all(store.patient(n).record["patient_id"] == n for n in made)
    finally:
        store.close()


# ---------------------------------------------------------------------------- log-in throttling


def _from(web: Any, address: str) -> Any:
    from fastapi.testclient import TestClient

    c = TestClient(web.app, base_url="https://testserver", client=(address, 50000),
                   headers={"user-agent": f"agent-{address}"})
    c.get("/login")
    return c


def _login(c: Any, username: str, password: str) -> Any:
    return c.post("/api/login", json={"username": username, "password": password})


def test_failed_log_ins_slow_down_one_address_and_never_lock_out_another(web: Any) -> None:
    attacker, owner = _from(web, "203.0.113.9"), _from(web, "198.51.100.7")
    answers = [_login(attacker, "coordinator", "wrong") for _ in range(web.settings.lockout_threshold)]
    assert {(r.status_code, r.json()["error"]) for r in answers} == {
        (401, "wrong user name or password")}
    # The right password from the attacker's address is now refused, with the same answer…
    throttled = _login(attacker, "coordinator", "coordinator-demo")
    assert throttled.status_code == 401 and throttled.json() == answers[0].json()
    # …while the owner, elsewhere, logs in at once.
    assert _login(owner, "coordinator", "coordinator-demo").status_code == 200
    # Growing delays: the attacker's 6 failures (5 + the throttled one) ask for 4 s.
    web.clock.advance(seconds=3)
    assert _login(attacker, "coordinator", "coordinator-demo").status_code == 401
    web.clock.advance(seconds=9)  # 7 failures: 8 s after the last
    assert _login(attacker, "coordinator", "coordinator-demo").status_code == 200


def test_delays_grow_to_at_most_the_longest_wait(web: Any) -> None:
    from trialdesk.services.accounts import Accounts

    accounts = Accounts(web.store, lockout_threshold=2, lockout_minutes=1)
    waits = []
    for _ in range(12):
        web.store.login_failed("coordinator", address="192.0.2.1", user_agent="x", reason="t")
        waits.append(accounts.wait("coordinator", "192.0.2.1").total_seconds())
    # After one failure the next try is free; from lockout_threshold (2) failures on it
    # waits 2, 4, 8, 16, 32 s after the last failure, and at most lockout_minutes.
    assert waits[:1] == [0]
    assert waits[1:6] == [2, 4, 8, 16, 32] and waits[6:] == [60] * 6
    assert accounts.wait("coordinator", "192.0.2.2").total_seconds() == 0


def test_unknown_user_wrong_password_and_throttled_answer_alike(web: Any) -> None:
    c = _from(web, "203.0.113.10")
    unknown = _login(c, "nobody-here", "x")
    wrong = _login(c, "monitor", "x")
    for _ in range(web.settings.lockout_threshold):
        _login(c, "monitor", "x")
    throttled = _login(c, "monitor", "monitor-demo")
    assert unknown.status_code == wrong.status_code == throttled.status_code == 401
    assert unknown.json() == wrong.json() == throttled.json()
    page = c.post("/login", data={"csrf_token": c.cookies.get("td_csrf"), "username": "nobody",
                                  "password": "x"}, headers={"accept": "text/html"})
    assert page.status_code == 401 and "wrong user name or password" in page.text


def test_every_failed_log_in_is_audited_with_address_and_user_agent(web: Any) -> None:
    c = _from(web, "203.0.113.11")
    _login(c, "nobody-here", "x")
    for _ in range(web.settings.lockout_threshold + 1):
        _login(c, "monitor", "x")
    [unknown] = web.store.audit_entries(record_type="user", record_id="nobody-here").items
    assert unknown.action == "login_failed" and unknown.reason == "unknown or inactive user"
    assert unknown.changes["address"]["new"] == "203.0.113.11"
    assert unknown.changes["user_agent"]["new"] == "agent-203.0.113.11"
    entries = web.store.audit_entries(record_type="user", record_id="monitor").items
    failed = [e for e in entries if e.action == "login_failed"]
    assert len(failed) == web.settings.lockout_threshold + 1
    assert failed[0].reason.startswith("throttled")
    assert all(e.changes["address"]["new"] == "203.0.113.11" for e in failed)


# ---------------------------------------------------------------------------- sessions


def test_a_session_ends_after_the_idle_timeout(web: Any) -> None:
    c = web.client("investigator")
    for _ in range(3):  # used every 20 minutes: alive past the first 30
        web.clock.advance(minutes=20)
        assert c.get("/api/me").status_code == 200
    web.clock.advance(minutes=web.settings.idle_minutes + 1)
    assert c.get("/api/me").status_code == 401


def test_a_busy_session_still_ends_after_the_absolute_limit(web: Any) -> None:
    c = web.client("investigator")
    for _ in range(int(web.settings.session_hours * 60 / 20) - 1):
        web.clock.advance(minutes=20)
        assert c.get("/api/me").status_code == 200
    web.clock.advance(minutes=21)
    assert c.get("/api/me").status_code == 401


def test_a_session_and_its_memberships_read_at_once_are_what_the_two_reads_give(
        web: Any) -> None:
    from datetime import timedelta

    from trialdesk.web.security import token_hash

    store, idle = web.store, timedelta(minutes=web.settings.idle_minutes)
    lifetime = timedelta(hours=web.settings.session_hours)
    hashed = token_hash(web.client("investigator").cookies.get("td_session"))

    def both() -> tuple[Any, Any]:
        one = store.session_with_memberships(hashed, idle=idle, lifetime=lifetime)
        user = store.session_user(hashed)  # without idle/lifetime: reads, never moves
        return one, None if user is None else (user, store.memberships(user.id))

    one, two = both()
    assert one is not None and one == two and len(one[1]) >= 1
    assert {r.role for r in one[1]} == {"investigator"}
    web.clock.advance(minutes=5)  # the expiry moves: the session lives past the first idle
    one, two = both()
    assert one == two and one is not None
    web.clock.advance(minutes=web.settings.idle_minutes - 1)
    assert both()[0] is not None
    web.clock.advance(minutes=web.settings.idle_minutes + 1)
    assert both() == (None, None)
    assert store.session_with_memberships("0" * 64, idle=idle, lifetime=lifetime) is None


# ---------------------------------------------------------------------------- headers


def test_answers_with_patient_data_are_not_cached(web: Any) -> None:
    c = web.client("monitor")
    for url in ("/api/patients", "/api/patients/NBNK-0001", "/patients/NBNK-0001",
                "/api/trials/NB-NK-2026/audit"):
        r = c.get(url, headers={"accept": "text/html"} if not url.startswith("/api") else {})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store", url


def test_hsts_only_over_tls(web: Any) -> None:
    from fastapi.testclient import TestClient

    secure = TestClient(web.app, base_url="https://testserver").get("/trials")
    assert secure.headers["strict-transport-security"].startswith("max-age=")
    plain = TestClient(web.app, base_url="http://testserver").get("/trials")
    assert "strict-transport-security" not in plain.headers


def test_the_api_docs_page_has_a_content_security_policy(web: Any) -> None:
    r = web.client().get("/api/docs")
    import base64
    import hashlib
    import re

    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # The docs page loads Swagger UI from its CDN and runs one inline script: the policy
    # allows that script by its hash and nothing else inline.
    [inline] = re.findall(r"<script>(.*?)</script>", r.text, re.S)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "unsafe-inline" not in csp
    assert "https://cdn.jsdelivr.net" in csp


# ---------------------------------------------------------------------------- serve and files


def _serve(*args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from trialdesk.cli import app

    result = CliRunner().invoke(app, ["serve", "--check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_plain_serve_refuses_a_database_with_the_demo_log_ins(tmp_path: Path) -> None:
    from trialdesk.store import Store, sqlite_url

    assert _serve("--demo", "--data-dir", str(tmp_path))[0] == 0
    code, out, err = _serve("--data-dir", str(tmp_path))
    assert code == 1 and "demo log-ins" in err and "--disable-demo-users" in err
    assert "administrator" in err and "trialdesk web application" not in out
    code, out, err = _serve("--data-dir", str(tmp_path), "--disable-demo-users")
    assert code == 0, err
    assert "demo log-ins deactivated: administrator" in out
    store = Store.open(sqlite_url(tmp_path))
    assert not any(u.active for u in store.users())
    assert _serve("--data-dir", str(tmp_path))[0] == 0  # nothing demo is left to refuse
    store.close()


def test_the_database_and_its_wal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    from trialdesk.store import Store

    path = tmp_path / "d" / "trialdesk.db"
    store = Store.open(f"sqlite:///{path}")
    store.add_user("u", "U", "x", actor="test", reason="a write, so the WAL exists")
    wal = path.with_name("trialdesk.db-wal")
    assert wal.exists()
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in (path, wal)} == {
        "trialdesk.db": "0o600", "trialdesk.db-wal": "0o600"}
    store.close()
    path.chmod(0o644)  # a file made by an older version is tightened when opened
    Store.open(f"sqlite:///{path}").close()
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("args", "expected"), [
    ([], "FULL"), (["--demo"], "NORMAL"), (["--synchronous", "normal"], "NORMAL"),
    (["--demo", "--synchronous", "FULL"], "FULL")])
def test_serve_syncs_every_commit_unless_demo(tmp_path: Path, args: list[str],
                                               expected: str) -> None:
    code, out, err = _serve("--data-dir", str(tmp_path), *args)
    assert code == 0, err
    assert f"synchronous={expected}" in out


def test_the_engine_sets_the_synchronous_mode_it_is_given(tmp_path: Path) -> None:
    from trialdesk.errors import DatabaseError
    from trialdesk.store.db import make_engine

    for mode, code in (("FULL", 2), ("NORMAL", 1)):  # SQLite's numbers for the modes
        engine = make_engine(f"sqlite:///{tmp_path / mode}.db", synchronous=mode)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == code
        engine.dispose()
    with pytest.raises(DatabaseError, match="FULL, NORMAL"):
        make_engine(f"sqlite:///{tmp_path}/x.db", synchronous="OFF")


# ---------------------------------------------------------------------------- retries


def test_a_retried_create_with_the_same_idempotency_key_makes_one_patient(web: Any) -> None:
    c = web.client("coordinator")
    body = {"trial_id": "NB-NK-2026", "site": "Moscow", "record": RECORD, "reason": "referred"}
    headers = {**_api(c), "Idempotency-Key": "3f1c9a7e-retry-1"}
    first = c.post("/api/patients", headers=headers, json=body)
    again = c.post("/api/patients", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json()["study_number"] == first.json()["study_number"] == "NBNK-0004"
    assert web.store.patients([("NB-NK-2026", None)]).total == 4
    other = c.post("/api/patients", headers=headers, json={**body, "site": "St Petersburg"})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["error"]
    fresh = c.post("/api/patients", headers={**_api(c), "Idempotency-Key": "3f1c9a7e-retry-2"},
                   json=body)
    assert fresh.json()["study_number"] == "NBNK-0005"
    # The key is the user's own: another user's same key is another request.
    inv = web.client("investigator")
    theirs = inv.post("/api/patients", headers={**_api(inv), "Idempotency-Key": "3f1c9a7e-retry-1"},
                      json=body)
    assert theirs.status_code == 201 and theirs.json()["study_number"] == "NBNK-0006"
    unkeyed = [c.post("/api/patients", headers=_api(c), json=body) for _ in range(2)]
    assert [r.json()["study_number"] for r in unkeyed] == ["NBNK-0007", "NBNK-0008"]


def test_concurrent_retries_with_one_key_make_one_patient(web: Any) -> None:
    c = web.client("coordinator")
    body = {"trial_id": "NB-NK-2026", "site": "Moscow", "record": RECORD, "reason": "referred"}
    headers = {**_api(c), "Idempotency-Key": "same-key-under-load"}
    numbers: list[str] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        barrier.wait()
        numbers.append(c.post("/api/patients", headers=headers, json=body).json()["study_number"])

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert numbers == ["NBNK-0004"] * 4


@pytest.mark.parametrize("key", ["", "with space", "x" * 256])
def test_a_malformed_idempotency_key_is_refused(web: Any, key: str) -> None:
    c = web.client("coordinator")
    r = c.post("/api/patients", headers={**_api(c), "Idempotency-Key": key}, json={
        "trial_id": "NB-NK-2026", "site": "Moscow", "record": RECORD, "reason": "referred"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "$.header.Idempotency-Key"


def test_the_command_line_masks_the_birth_date_by_role_too(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from trialdesk.cli import app
    from trialdesk.store import Store, sqlite_url

    assert _serve("--demo", "--data-dir", str(tmp_path))[0] == 0
    store = Store.open(sqlite_url(tmp_path))
    birth = store.patient("NBNK-0001").record["birth_date"]
    store.close()
    runner = CliRunner()
    seen = {}
    for role in ("investigator", "statistician"):
        result = runner.invoke(app, ["patients", "export", "NBNK-0001", "--by", role,
                                     "--data-dir", str(tmp_path)])
        assert result.exit_code == 0, result.stderr
        seen[role] = birth in result.stdout
    assert seen == {"investigator": True, "statistician": False}
