"""One masking rule for identifiers: every API route and page, walked as every role (and
as members of another trial or site, and anonymously), never shows a demo patient's name,
birth date or hospital number to a caller whose role there does not grant them — not in
screening evidence, audit-trail diffs, exports or error messages."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from test_web_access import (  # noqa: F401
    CALLERS,
    EXPECTED,
    RECORD,
    _call,
    _unenrol,
    access_web,
    callers_clients,
)
from trialdesk.services.masking import Mask
from trialdesk.services.roles import Permission, allowed


def _identities(web: Any) -> list[tuple[str, str | None, set[str]]]:
    """(trial, site, identifying values) of every stored patient."""
    return [(t, site, {str(v) for v in identity.values() if v})
            for t, site, identity in web.store.patient_identities(
                [(t.id, None) for t in web.store.trials()])]


def _forbidden(identities: list[tuple[str, str | None, set[str]]], role: str | None,
               membership: str) -> set[str]:
    trial, site = {"member": ("NB-NK-2026", None), "other": ("REFNOT-R2", None),
                   "site": ("NB-NK-2026", "St Petersburg"), "none": ("", None)}[membership]

    def shown(t: str, s: str | None) -> bool:
        return (role is not None and allowed(role, Permission.PATIENT_IDENTIFIERS)
                and t == trial and (site is None or s == site))

    visible = {v for t, s, vals in identities if shown(t, s) for v in vals}
    return {v for t, s, vals in identities if not shown(t, s) for v in vals} - visible


def _texts(r: Any) -> list[str]:
    kind = r.headers.get("content-type", "")
    if kind.startswith("application/zip"):
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            return [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
    return [r.content.decode("utf-8", "replace")]


def test_no_answer_shows_identifiers_a_role_may_not_see(access_web: Any) -> None:  # noqa: F811
    web = access_web
    identities = _identities(web)
    names = {v for _, _, vals in identities for v in vals if v.startswith("Demo Patient")}
    births = {v for _, _, vals in identities for v in vals if v[:2] in ("19", "20")}
    assert len(names) == 7 and births and all(len(v) >= 4 for _, _, vs in identities for v in vs)
    clients = callers_clients(web)
    leaks: list[str] = []
    checked = 0
    for (method, path), _rule in sorted(EXPECTED.items()):
        for label, role, membership in CALLERS:
            if "enrol" in path and web.store.enrolment("NBNK-0002") is not None:
                _unenrol(web)
            r = _call(web, clients[label], method, path)
            checked += 1
            forbidden = _forbidden(identities, role, membership)
            if path in ("/api/screen", "/screen"):  # the caller's own record, sent back
                forbidden -= {RECORD["birth_date"]}
            for text in _texts(r):
                found = sorted(v for v in forbidden if v in text)
                if found:
                    leaks.append(f"{method} {path} as {label} ({r.status_code}): {found}")
    assert checked > 1000
    assert leaks == [], "\n".join(leaks[:40])


def test_the_statistician_reads_screening_evidence_and_audit_diffs_masked(web: Any) -> None:
    birth = web.store.patient("NBNK-0001").record["birth_date"]
    inv, stat = web.client("investigator"), web.client("statistician")
    assert birth in inv.get("/api/patients/NBNK-0001/screenings").text
    masked = stat.get("/api/patients/NBNK-0001/screenings")
    assert masked.status_code == 200 and birth not in masked.text and "birth date ***" in masked.text
    admin = web.client("administrator")
    trail = admin.get("/api/trials/NB-NK-2026/audit?limit=200")
    assert trail.status_code == 200 and birth not in trail.text and "***" in trail.text


def test_the_mask_covers_the_forms_a_value_takes_in_json_and_html() -> None:
    mask = Mask(("Zoë O'Brien",))
    assert mask.text("Zoë O'Brien / Zoë O&#x27;Brien / Zoë O&#39;Brien / Zo\\u00eb O'Brien / Zo"
                     ) == "*** / *** / *** / *** / Zo"
