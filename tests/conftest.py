"""Shared fixtures: a real PostgreSQL server and Debian's chromium, each started by the tests.

When either cannot be started the tests that need it are skipped with the reason, except
in CI (``CI=true``), where ``.ci/run`` installs them and a skip is a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("TRIALDESK_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(os.environ.get("TRIALDESK_TEST_OUTPUT",
                             Path(__file__).resolve().parents[1] / "out" / "tests"))


def unavailable(reason: str) -> None:
    """Skip with ``reason``; in CI, fail instead (CI installs what the tests need)."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests leave files for a reviewer (screenshots)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


# ---------------------------------------------------------------------------- PostgreSQL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


class _Postgres:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="trialdesk-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: run the server as nobody
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root and runuser (util-linux) is not available")
            shutil.chown(self.root, user="nobody")
            self.as_user = [runuser, "-u", "nobody", "--"]
        os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {(result.stderr or result.stdout)[-500:]}")

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                  "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-w", "-t", "60", "-o",
                  f"-p {self.port} -h 127.0.0.1 -k {self.root} -F -c fsync=off "
                  "-c full_page_writes=off -c max_connections=50", "start")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL of a PostgreSQL server (``$TRIALDESK_TEST_POSTGRES`` or one started here)."""
    given = os.environ.get("TRIALDESK_TEST_POSTGRES")
    if given:
        yield given.rstrip("/")
        return
    bindir = _postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL is not installed (apt-get install -y postgresql)")
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed")
        return
    server: _Postgres | None = None
    try:
        server = _Postgres(bindir)
        server.start()
    except Exception as exc:  # any reason the server cannot start is reported as the skip reason
        if server is not None:
            server.stop()
        unavailable(f"cannot start PostgreSQL from {bindir}: {exc}")
        return
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    import psycopg

    name = f"td_{uuid.uuid4().hex[:12]}"
    plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_server}/{name}"
    finally:
        with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite (a file, WAL mode) and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trialdesk.db'}"
    return str(request.getfixturevalue("postgres_url"))


# ---------------------------------------------------------------------------- chromium

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-quic", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """A headless Debian chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} not found (apt-get install -y chromium)")
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright; no browser download)")
        return
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS, timeout=60_000)
        except Exception as exc:  # the launch error text is the skip reason
            unavailable(f"cannot launch {CHROMIUM}: {str(exc).splitlines()[0]}")
            return
        try:
            yield browser
        finally:
            browser.close()


# ---------------------------------------------------------------------------- web application


class TestClock:
    """A settable UTC clock for the store (sessions, lock-out, 'today' for patient files)."""

    def __init__(self, at: str = "2026-11-21T12:00:00+00:00") -> None:
        from datetime import datetime

        self.at = datetime.fromisoformat(at)

    def __call__(self) -> object:
        return self.at

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.at += timedelta(**delta)


class WebApp:
    """A demo-seeded application with a test client per user."""

    def __init__(self, database_url: str, *, seed: bool = True) -> None:
        from trialdesk.protocol.load import default_protocol_dir
        from trialdesk.services.demo import demo_logins, seed_demo
        from trialdesk.store import Store
        from trialdesk.web.app import create_app
        from trialdesk.web.settings import Settings

        self.clock = TestClock()
        self.store = Store.open(database_url, clock=self.clock)  # type: ignore[arg-type]
        self.settings = Settings(database_url=database_url, secret_key="t" * 40,
                                 max_upload_bytes=64 * 1024, facility="A9999")
        protocols = default_protocol_dir()
        if seed:
            seed_demo(self.store, protocols, protocols.parent / "examples" / "patients")
        self.logins = {x.username: x.password for x in demo_logins()}
        self.app = create_app(self.settings, self.store)

    def client(self, username: str | None = None, *, raise_errors: bool = True) -> object:
        """A client logged in as ``username`` (None: anonymous); ``.csrf`` holds its token."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

        c = TestClient(self.app, base_url="https://testserver",
                       raise_server_exceptions=raise_errors)
        if username is None:
            c.get("/login")
        else:
            r = c.post("/api/login", json={"username": username,
                                           "password": self.logins.get(username, "x")})
            assert r.status_code == 200, r.text
        c.csrf = c.cookies.get("td_csrf")  # type: ignore[attr-defined]
        return c

    def add_user(self, username: str, role: str, trial_id: str, site: str | None = None) -> None:
        from trialdesk.services.accounts import hash_password

        password = f"{username}-pass"
        self.store.add_user(username, f"Test {username}", hash_password(password), actor="test",
                            reason="test user")
        self.store.add_membership(username, trial_id, role, site, actor="test",
                                  reason="test membership")
        self.logins[username] = password


@pytest.fixture(scope="session")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo-seeded SQLite file, made once; each test gets its own copy."""
    path = tmp_path_factory.mktemp("demo") / "trialdesk.db"
    w = WebApp(f"sqlite:///{path}")
    with w.store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    w.store.close()
    return path


@pytest.fixture
def web(tmp_path: Path, demo_database: Path) -> Iterator[WebApp]:
    """The demo application on SQLite (a copy of the demo database in tmp_path)."""
    target = tmp_path / "trialdesk.db"
    shutil.copyfile(demo_database, target)
    w = WebApp(f"sqlite:///{target}", seed=False)
    yield w
    w.store.close()
