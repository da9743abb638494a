"""Locust users for ``bench/web.py``: a coordinator working through the web app.

Each user logs in with the demo coordinator's password and, for as long as the run lasts,
opens the worklist, a patient page and a calendar, checks a patient's screening form (the
form submitted with "Check without saving": screened live, nothing stored) and records an
adverse event through its form. Forms are read from the page and sent back as a browser
would (every field with its shown value, the CSRF token included), so the bench follows the
forms as they are. The log-in page is requested too: it touches no database and is the
baseline the bench compares the pages with.
"""

from __future__ import annotations

import os
import random
import re
from datetime import date
from html.parser import HTMLParser
from typing import Any

from locust import FastHttpUser, between, task

USER = os.environ.get("BENCH_USER", "coordinator")
PASSWORD = os.environ.get("BENCH_PASSWORD", "coordinator-demo")
PATIENT_LINK = re.compile(r'href="/patients/([A-Za-z0-9-]+)"')
_READY: list[str] = []  # users done with their log-in (one process: locust's gevent users)
_ENROLLED: list[str] = []  # the patients with a calendar, found by the first user


class _Forms(HTMLParser):
    """The forms of a page: action → {field name: value} as a browser would send them."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._action: str | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._action = a.get("action", "")
            self.forms.setdefault(self._action, {})
            return
        if tag == "option" and self._select is not None and self._action is not None:
            if "selected" in a:
                self.forms[self._action][self._select] = a.get("value", "")
            return
        if self._action is None or "name" not in a or "disabled" in a:
            return
        fields = self.forms[self._action]
        name = a["name"]
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file", "reset", "image"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            fields[name] = a.get("value", "on" if kind == "checkbox" else "")
        elif tag == "select":
            self._select = name
            fields.setdefault(name, "")
        elif tag == "textarea":
            self._textarea = name
            fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None and self._action is not None:
            self.forms[self._action][self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._action = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def forms_of(html: str) -> dict[str, dict[str, str]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


class Coordinator(FastHttpUser):
    """A coordinator on locust's geventhttpclient-based client: it spends a fraction of
    the CPU time of the requests-based one per request, so the times measured are the
    server's, not this client's queue on a shared machine."""

    wait_time = between(0.5, 1.5)
    patients: list[str]

    def _get(self, url: str, name: str, **kw: Any) -> Any:
        self._loopback()
        return self.client.get(url, name=name, **kw)

    def _post(self, url: str, name: str, **kw: Any) -> Any:
        self._loopback()
        return self.client.post(url, name=name, allow_redirects=False, **kw)

    def _loopback(self) -> None:
        """Send the Secure cookies over http://127.0.0.1, as browsers do for loopback (the
        client's cookie jar sends them over https only); redirects are not followed, so
        every request goes through here."""
        for cookie in self.client.cookiejar:
            cookie.secure = False

    def on_start(self) -> None:
        page = self._get("/login", "setup: GET /login")
        fields = forms_of(page.text).get("/login", {})
        fields.update(username=USER, password=PASSWORD, next="/")
        self._post("/login", "setup: POST /login", data=fields)
        listing = self._get("/patients", "setup: GET /patients").text
        self.patients = sorted(set(PATIENT_LINK.findall(listing)) - {"new"})
        if not self.patients:
            raise RuntimeError("the patient list shows no patient: is the demo loaded?")
        if not _ENROLLED:
            for n in self.patients:  # only an enrolled patient has a calendar and AEs
                with self._get(f"/patients/{n}/calendar", "setup: GET /patients/{n}/calendar",
                               catch_response=True) as r:
                    if r.status_code == 200 and n not in _ENROLLED:
                        _ENROLLED.append(n)
                    r.success()
        if not _ENROLLED:
            raise RuntimeError("no demo patient is enrolled")
        self.enrolled = list(_ENROLLED)
        _READY.append(USER)
        runner = self.environment.runner
        if runner is not None and len(_READY) == runner.target_user_count:
            # statistics start once every user has logged in: the log-ins (Argon2 by
            # design, all at once) are not what a coordinator waits for page after page
            self.environment.stats.reset_all()
            if os.environ.get("BENCH_MEASURING"):  # tells bench/web.py: counting starts now
                with open(os.environ["BENCH_MEASURING"], "w") as f:
                    f.write("measuring\n")

    def _patient(self) -> str:
        return random.choice(self.patients)

    def _enrolled(self) -> str:
        return random.choice(self.enrolled)

    @task(1)
    def baseline(self) -> None:
        self._get("/login", "GET /login (baseline)")

    @task(3)
    def worklist(self) -> None:
        self._get("/", "GET / (worklist)")

    @task(3)
    def patient_page(self) -> None:
        self._get(f"/patients/{self._patient()}", "GET /patients/{n}")

    @task(3)
    def calendar(self) -> None:
        self._get(f"/patients/{self._enrolled()}/calendar", "GET /patients/{n}/calendar")

    @task(2)
    def screening_form(self) -> None:
        n = self._patient()
        action = f"/patients/{n}/form"
        page = self._get(action, "GET /patients/{n}/form")
        fields: dict[str, Any] = forms_of(page.text).get(action, {})
        fields["action"] = "check"
        self._post(action, "POST /patients/{n}/form (check)", data=fields)

    @task(2)
    def adverse_event(self) -> None:
        n = self._enrolled()
        action = f"/patients/{n}/adverse-events"
        page = self._get(action, "GET /patients/{n}/adverse-events")
        # the entry form is the one posting to the page itself (its action may carry
        # a #fragment); the others correct or decide on recorded events
        fields: dict[str, Any] = next((f for a, f in forms_of(page.text).items()
                                       if a.split("#")[0] == action), {})
        if not fields:
            raise RuntimeError(f"{action} shows no adverse-event entry form")
        fields.update(term="Nausea", grade="1", onset=date.today().isoformat(),
                      reason="bench: adverse event recorded by form", action="record")
        with self._post(action, "POST /patients/{n}/adverse-events", data=fields,
                        catch_response=True) as r:
            if r.status_code in (303, 302):
                r.success()
            else:
                r.failure(f"status {r.status_code}")
