"""One masking rule for patients' identifiers — name, birth date, hospital number (and any
other identifier kept with the patient) — wherever data leaves the service layer.

A caller whose role in a patient's trial (and site) does not grant
:attr:`~trialdesk.services.roles.Permission.PATIENT_IDENTIFIERS` sees ``***`` in place of
each of that patient's identifying values, in any text the caller is given: JSON answers,
pages, audit-trail diffs, screening evidence ("birth date …"), exports and error messages.
The interfaces apply :meth:`Mask.text` to every textual answer, so a new view cannot forget.

>>> Mask(("Demo Patient Alpha", "2019-04-12")).text('{"evidence": "birth date 2019-04-12"}')
'{"evidence": "birth date ***"}'
>>> Mask(()).text("nothing to hide")
'nothing to hide'
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field

from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.roles import Permission

MASK = "***"
SHORTEST = 4  # shorter values would mask ordinary words and numbers


@dataclass(frozen=True)
class Mask:
    """The identifying values one caller must not see."""

    values: tuple[str, ...]
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        forms = {form for v in self.values if len(v.strip()) >= SHORTEST
                 for form in (v, html.escape(v), html.escape(v).replace("&#x27;", "&#39;"),
                              json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1])}
        pattern = ("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
                   if forms else None)
        object.__setattr__(self, "_pattern", re.compile(pattern) if pattern else None)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text


def mask_for(ctx: Services, who: Principal) -> Mask:
    """The mask of ``who``: the identifying values of every patient ``who`` may read but
    whose identifiers ``who``'s role there does not show. Nobody logged in reads no patient."""
    if who.user is None:
        return Mask(())
    # kept until the next write (a patient, a membership changed): built once, not per page
    key = ("mask", who.user.id, tuple(sorted((m.trial_id, m.site or "", m.role)
                                             for m in who.memberships)))
    return ctx.catalogue.kept(key, lambda: _mask(ctx, who))


def _mask(ctx: Services, who: Principal) -> Mask:
    values: set[str] = set()
    for trial_id, site, identity in ctx.store.patient_identities(
            who.scopes(Permission.PATIENT_READ)):
        if not who.can(Permission.PATIENT_IDENTIFIERS, trial_id, site):
            values.update(str(v) for v in identity.values() if v)
    return Mask(tuple(sorted(values)))
