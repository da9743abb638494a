"""GD2 status and heterogeneity from specimens, by the method and threshold a protocol sets.

Seed 001 asks for the level of GD2 expression, its heterogeneity between lesions, and how
positivity was confirmed. A protocol names one method and a % positive threshold
(``biomarkers.gd2`` in the protocol file); trialdesk never assumes one.

* a specimen is positive when its % positive cells reaches the threshold;
* the patient's status comes from the specimens of that method on their latest date:
  positive if all are positive, negative if none is, discordant otherwise;
* heterogeneity: specimens of that method (any date in the look-back window, any lesion)
  on both sides of the threshold.

Specimens of another method, or without a % positive (an H-score only), are not used and
the evidence says so.

>>> from datetime import date
>>> from trialdesk.facts.patient import Gd2Specimen
>>> rule = Gd2Threshold("ihc", 50.0)
>>> s = [Gd2Specimen(date=date(2026, 3, 1), site="adrenal", method="ihc", percent_positive=50),
...      Gd2Specimen(date=date(2026, 3, 1), site="liver", method="ihc", percent_positive=20)]
>>> r = gd2_status(s, rule, on=date(2026, 3, 2))
>>> r.status, r.heterogeneous
('discordant', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from trialdesk.facts.patient import Gd2Specimen

METHOD_LABELS = {"ihc": "immunohistochemistry", "flow_cytometry": "flow cytometry",
                 "marrow_immunocytology": "immunocytology of bone marrow"}


@dataclass(frozen=True)
class Gd2Threshold:
    """A protocol's GD2 rule: the method and the % positive cells that count as positive."""

    method: str
    percent: float
    unconfirmed: bool = False

    def shown(self) -> str:
        mark = " [unconfirmed]" if self.unconfirmed else ""
        return f"≥ {self.percent:g}% by {METHOD_LABELS.get(self.method, self.method)}{mark}"


@dataclass(frozen=True)
class Gd2Result:
    status: str | None  # positive / negative / discordant; None = unknown
    heterogeneous: bool | None
    evidence: str
    observed: date | None = None


def gd2_status(specimens: Sequence[Gd2Specimen], rule: Gd2Threshold, *, on: date,
               since: date | None = None) -> Gd2Result:
    """GD2 status and heterogeneity on ``on`` from specimens dated ``since``..``on``."""
    used = [s for s in specimens if s.method == rule.method and s.percent_positive is not None
            and s.date <= on and (since is None or s.date >= since)]
    if not used:
        return Gd2Result(None, None, f"no {METHOD_LABELS.get(rule.method, rule.method)} "
                                     "specimen with a % positive in the look-back window")
    latest = max(s.date for s in used)
    last = [s for s in used if s.date == latest]
    positive = [s for s in last if (s.percent_positive or 0) >= rule.percent]
    status = ("positive" if len(positive) == len(last) else
              "negative" if not positive else "discordant")
    sides = {(s.percent_positive or 0) >= rule.percent for s in used}
    listed = "; ".join(f"{s.site} {s.percent_positive:g}% on {s.date}" for s in used)
    return Gd2Result(status, len(sides) == 2, f"threshold {rule.shown()}: {listed}", latest)


__all__ = ["METHOD_LABELS", "Gd2Result", "Gd2Threshold", "gd2_status"]
