"""Web application settings: given explicitly, or read from the environment by the CLI.

There is no default secret: :meth:`Settings.for_data_dir` keeps a random key in the data
directory (created once, readable only by its owner), and a key shorter than 32
characters is refused.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from trialdesk.errors import SettingsError

#: The environment variable ``trialdesk serve --workers N`` hands its settings to each
#: server process in (JSON; see :func:`trialdesk.web.app.app_from_environment`).
SERVE_ENV = "TRIALDESK_SERVE"


@dataclass(frozen=True)
class Settings:
    """How the web application runs.

    ``facility`` is the ISBT 128 facility identification number a collection recorded on the
    web is numbered under (``--facility`` / ``TRIALDESK_FACILITY``); without it the cell lab
    cannot record a collection on the web.

    ``cookie_secure`` marks the session cookie Secure (browsers treat http://localhost and
    http://127.0.0.1 as secure, so it stays on for local use).
    """

    database_url: str
    secret_key: str
    protocols_dir: Path | None = None
    cookie_secure: bool = True
    session_hours: float = 8.0
    idle_minutes: float = 30.0
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    max_upload_bytes: int = 1_000_000
    page_size: int = 25
    facility: str | None = None  # ISBT 128 facility identifier of new collections (a site setting)

    def __post_init__(self) -> None:
        if len(self.secret_key) < 32:
            raise SettingsError("the secret key must be at least 32 characters",
                                where="TRIALDESK_SECRET_KEY")
        if self.idle_minutes <= 0:
            raise SettingsError("must be more than 0", where="idle_minutes")
        if self.lockout_threshold < 1:
            raise SettingsError("must be at least 1", where="lockout_threshold")
        if self.max_upload_bytes < 1024:
            raise SettingsError("must be at least 1024 bytes", where="max_upload_bytes")
        if self.facility is not None:
            from trialdesk.cellproduct.identifier import Din, IdentifierError

            try:
                Din.make(self.facility, 2000, 1)
            except IdentifierError as exc:
                raise SettingsError(exc.reason, where="TRIALDESK_FACILITY") from None

    @classmethod
    def for_data_dir(cls, data_dir: Path, *, database_url: str | None = None,
                     secret_key: str | None = None, **kwargs: object) -> Settings:
        """Settings for a data directory: SQLite file and secret key kept inside it."""
        from trialdesk.store.db import sqlite_url

        data_dir.mkdir(parents=True, exist_ok=True)
        if secret_key is None:
            key_file = data_dir / "secret_key"
            if not key_file.exists():
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(48))
            secret_key = key_file.read_text().strip()
        return cls(database_url=database_url or sqlite_url(data_dir), secret_key=secret_key,
                   **kwargs)  # type: ignore[arg-type]
