"""Idempotency-Key on every creating API request: a retry with the same key gets the first
answer and nothing is created twice; another request with the key is refused; an error
releases the key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _h(c: Any, key: str | None = None) -> dict[str, str]:
    out = {"x-csrf-token": c.csrf}
    if key is not None:
        out["Idempotency-Key"] = key
    return out


def _ae(onset: str) -> dict[str, Any]:
    return {"term": "Pain", "grade": 2, "onset": onset, "reason": "seen on the ward"}


def test_a_retried_adverse_event_is_recorded_once(web: Any) -> None:
    web.clock.at = datetime.now(UTC)
    c = web.client("coordinator")
    url = "/api/patients/NBNK-0001/adverse-events"
    before = len(web.store.adverse_events("NBNK-0001"))
    body = _ae(web.clock.at.date().isoformat())
    first = c.post(url, headers=_h(c, "ae-retry-1"), json=body)
    assert first.status_code == 201, first.text
    again = c.post(url, headers=_h(c, "ae-retry-1"), json=body)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("idempotent-replay") == "true"
    assert len(web.store.adverse_events("NBNK-0001")) == before + 1
    other = c.post(url, headers=_h(c, "ae-retry-1"), json={**body, "reason": "another"})
    assert other.status_code == 409
    assert other.json()["errors"][0]["field"] == "$.header.Idempotency-Key"
    unkeyed = c.post(url, headers=_h(c), json=body)
    assert unkeyed.status_code == 201
    assert len(web.store.adverse_events("NBNK-0001")) == before + 2


def test_a_refused_request_releases_its_key(web: Any) -> None:
    web.clock.at = datetime.now(UTC)
    c = web.client("coordinator")
    url = "/api/patients/NBNK-0001/adverse-events"
    future = _ae("2999-01-01")
    bad = c.post(url, headers=_h(c, "ae-retry-2"), json=future)
    assert bad.status_code == 422
    again = c.post(url, headers=_h(c, "ae-retry-2"), json=future)
    assert again.status_code == 422 and again.headers.get("idempotent-replay") is None
    good = c.post(url, headers=_h(c, "ae-retry-3"), json=_ae(web.clock.at.date().isoformat()))
    assert good.status_code == 201


def test_keys_are_per_user(web: Any) -> None:
    web.clock.at = datetime.now(UTC)
    url = "/api/patients/NBNK-0001/adverse-events"
    body = _ae(web.clock.at.date().isoformat())
    before = len(web.store.adverse_events("NBNK-0001"))
    for user in ("coordinator", "investigator"):
        c = web.client(user)
        assert c.post(url, headers=_h(c, "shared-key"), json=body).status_code == 201
    assert len(web.store.adverse_events("NBNK-0001")) == before + 2
