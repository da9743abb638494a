"""API fuzzing with schemathesis, bounded (a few examples per operation) and logged in as
every role: no server error, every status code an operation answers is declared in the
OpenAPI document, and a method an operation does not have answers 405 with ``Allow``."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from trialdesk.services.roles import Role

EXAMPLES = 2  # per operation and role: the whole run stays within about a minute
ROLES: list[str | None] = [None, *(r.value for r in Role)]


@pytest.fixture
def schema(web: Any) -> Any:
    import schemathesis

    return schemathesis.openapi.from_asgi("/api/openapi.json", web.app)


def _operations(schema: Any) -> list[Any]:
    """Every operation, log-out last (it ends the session the others are fuzzed in)."""
    return sorted((result.ok() for result in schema.get_all_operations()),
                  key=lambda op: (op.path == "/api/logout", op.label))


def _fuzz(operation: Any, label: str, headers: dict[str, str], cookies: dict[str, str],
          failures: list[str]) -> int:
    """Run a few generated requests against one operation; returns how many were sent."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import status_code_conformance

    sent = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call(headers=headers, cookies=cookies)
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        except (AssertionError, BaseExceptionGroup) as exc:  # collected, reported by the test
            found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
            failures.extend(f"{label}: {operation.label}: {str(e).splitlines()[0]} "
                            f"({response.status_code})" for e in found)

    run()
    return sent


def test_fuzzed_requests_never_make_a_server_error_nor_an_undeclared_status(
        web: Any, schema: Any) -> None:
    started = time.monotonic()
    failures: list[str] = []
    calls = 0
    operations = _operations(schema)
    for role in ROLES:
        client = web.client(role)
        cookies = dict(client.cookies.items())
        headers = {"x-csrf-token": client.csrf or ""}
        for operation in operations:
            calls += _fuzz(operation, role or "anonymous", headers, cookies, failures)
    assert calls >= len(ROLES) * len(operations)
    assert failures == [], "\n".join(sorted(set(failures))[:60])
    assert time.monotonic() - started < 120


def test_options_answers_405_with_allow_on_every_operation(web: Any, schema: Any) -> None:
    client = web.client("investigator")
    paths = {op.path for op in _operations(schema)}
    for path in sorted(paths):
        url = path.replace("{trial_id}", "NB-NK-2026").replace("{study_number}", "NBNK-0001")
        url = url.replace("{number}", "1").replace("{ae_id}", "1").replace("{action_id}", "1")
        r = client.options(url)
        assert r.status_code == 405, (path, r.status_code)
        declared = {m.upper() for m in schema.raw_schema["paths"][path]}
        assert set(r.headers["allow"].replace(" ", "").split(",")) >= declared, path
