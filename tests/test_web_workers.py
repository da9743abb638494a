"""``trialdesk serve --workers N``: several server processes on one database, one secret
key and one set of log-in sessions — a log-in and a form started in one process are
honoured by the others."""

from __future__ import annotations

import gc
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.cli.web import default_workers
from trialdesk.web.settings import SERVE_ENV

SRC = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Browser:
    """Cookies kept by hand: the session cookie is Secure, which a browser sends to
    http://127.0.0.1 and urllib does not."""

    def __init__(self, base: str) -> None:
        self.base, self.cookies = base, {}  # type: ignore[var-annotated]

    def send(self, path: str, data: bytes | None = None,
             content_type: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
        req = urllib.request.Request(self.base + path, data=data, headers={
            "accept": "text/html", "cookie": "; ".join(f"{k}={v}" for k, v in
                                                       self.cookies.items())})
        if data is not None:
            req.add_header("content-type", content_type)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                status, headers, body = r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read().decode()
        for value in headers.get_all("set-cookie") or []:
            for k, morsel in SimpleCookie(value).items():
                self.cookies[k] = morsel.value
        return status, body


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def test_serve_defaults_to_a_process_per_cpu_and_says_how_many(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--demo", "--check", "--data-dir", str(tmp_path)],
                                env={"TRIALDESK_WORKERS": ""})
    assert result.exit_code == 0, result.stderr
    assert f"server processes: {default_workers()}" in result.stdout
    assert default_workers() == max(1, os.cpu_count() or 1)
    result = CliRunner().invoke(app, ["serve", "--demo", "--check", "--data-dir", str(tmp_path)],
                                env={"TRIALDESK_WORKERS": "3"})
    assert "server processes: 3" in result.stdout


def test_two_processes_share_the_secret_key_and_the_sessions(tmp_path: Path,
                                                            monkeypatch: Any) -> None:
    """Two applications built as two server processes build theirs: a log-in and a CSRF
    token from one are accepted by the other."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from trialdesk.web.app import GC_THRESHOLDS, app_from_environment

    assert CliRunner().invoke(app, ["serve", "--demo", "--check", "--data-dir",
                                    str(tmp_path)]).exit_code == 0
    monkeypatch.delenv("TRIALDESK_SECRET_KEY", raising=False)
    monkeypatch.setenv(SERVE_ENV, json.dumps({
        "data_dir": str(tmp_path), "database_url": f"sqlite:///{tmp_path / 'trialdesk.db'}",
        "synchronous": "NORMAL", "idle_minutes": 30.0, "facility": "A9999"}))
    from trialdesk.services import catalogue

    catalogue._COMPILED.clear()
    thresholds = gc.get_threshold()
    try:
        one, two = app_from_environment(), app_from_environment()
        # warmed up: protocols compiled, the long-lived objects frozen, collections rarer
        assert gc.get_threshold() == GC_THRESHOLDS and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    stored = one.state.ctx.store.trials()
    assert stored and all(t.latest.digest in catalogue._COMPILED for t in stored)
    assert one.state.ctx.settings.secret_key == two.state.ctx.settings.secret_key
    assert one.state.ctx.settings.secret_key == (tmp_path / "secret_key").read_text().strip()
    a = TestClient(one, base_url="https://testserver")
    b = TestClient(two, base_url="https://testserver")
    r = a.post("/api/login", json={"username": "coordinator", "password": "coordinator-demo"})
    assert r.status_code == 200
    b.cookies = a.cookies
    page = b.get("/patients/NBNK-0001/form", headers={"accept": "text/html"})
    assert page.status_code == 200 and "Log in" not in page.text[:2000]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    a.cookies = b.cookies
    r = a.post("/api/logout", headers={"x-csrf-token": a.cookies.get("td_csrf") or ""})
    assert r.status_code in (200, 204), r.text
    assert b.get("/", headers={"accept": "text/html"}, follow_redirects=False).status_code in (
        302, 303, 401)  # logged out in one process: out in the other too


def test_serve_with_two_workers_logs_in_and_serves_pages_and_forms(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("TRIALDESK_SECRET_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "trialdesk.cli", "serve", "--demo", "--workers", "2",
         "--data-dir", str(tmp_path / "data"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(base + "/login", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < end, "the server did not start"
                time.sleep(0.5)
        you = Browser(base)
        status, page = you.send("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert status == 200 and token
        from urllib.parse import urlencode

        status, _ = you.send("/login", urlencode({
            "csrf_token": token.group(1), "username": "coordinator",
            "password": "coordinator-demo", "next": "/"}).encode())
        assert status == 303 and "td_session" in you.cookies
        for _ in range(8):  # requests spread over both processes
            status, page = you.send("/")
            assert status == 200 and "Assessments due" in page
            status, page = you.send("/patients/NBNK-0001/calendar")
            assert status == 200 and '<ol class="timeline">' in page
            status, page = you.send("/patients/NBNK-0001/form")
            assert status == 200
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert token
            status, page = you.send("/patients/NBNK-0001/form", urlencode({
                "csrf_token": token.group(1), "action": "check"}).encode())
            assert status in (200, 422) and "CSRF" not in page
    finally:
        server.terminate()
        out = server.communicate(timeout=30)[0].decode()
    assert "server processes: 2" in out
    assert len(set(re.findall(r"Started server process \[(\d+)\]", out))) == 2, out[-2000:]
