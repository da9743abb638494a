"""Cell products in the SDTM package: where SDTMIG v3.4 has a place for them.

* **EX.EXREFID** (Reference ID, Perm) — the ISBT 128 product identifier of the cell product
  an EX record gave: an infusion's product is written on the EX record of the same subject,
  treatment (the product type's protocol agent) and dates. An EX record that already holds
  one keeps it (EXREFID holds one identifier).
* **BE** (Biospecimen Events, an Events-class domain of SDTMIG v3.3 and v3.4) — each
  product's life as events, per subject: BEREFID the product identifier; BETERM
  ``Collecting`` (BECAT COLLECTION), ``Processing``, ``Aliquoting``, ``Preparing dose``
  (BECAT PREPARATION) and ``Transferring`` for each hand-over (BECAT TRANSPORT; BECAT
  examples of the SDTMIG v3.4 BE table); BESTDTC the time; BESTDY the study day. A subject's
  records cover every product of theirs (recipient, or donor of autologous cells) and the
  products in its line back to the collection, so third-party stock appears under each
  subject who received a dose of it; stock not yet given to a subject has no subject and is
  not in SDTM. BEDECOD (CDISC codelist C124297) stays empty: the verbatim terms are not
  mapped to it here.
* **RELSPEC** (Related Specimens, SDTMIG v3.4 §8.8) — the genealogy: one record per subject
  and product with its PARENT product and LEVEL (the collection is generation 1).

Not here: the hand-over's location, temperature and condition (a SUPPBE would hold them),
release test results (BS), and infusions of timed events that have no EX record (the MSC
infusion of RuMCeSS, whose calendar event has no course).

The variables' names, labels and cores are the SDTMIG v3.4 BE and RELSPEC tables (BESTDTC
and BEENDTC timing variables of the Events class); :func:`product_datasets` registers them
with the package's tables (:data:`~trialdesk.outcomes.export_sdtm.SPEC`, KEYS, CLASSES,
LABELS) so the checks, the XPT writer and define.xml treat them as every other dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from trialdesk.cellproduct.product import lineage
from trialdesk.outcomes.export_sdtm import CLASSES, KEYS, LABELS, SPEC, Variable, _ordered
from trialdesk.outcomes.products import TrialProducts, owner

_ID = (Variable("STUDYID", "Study Identifier", "Char", "Req"),
       Variable("DOMAIN", "Domain Abbreviation", "Char", "Req"),
       Variable("USUBJID", "Unique Subject Identifier", "Char", "Req"))
PRODUCT_SPEC: dict[str, tuple[Variable, ...]] = {
    "BE": (*_ID,
           Variable("BESEQ", "Sequence Number", "Num", "Req"),
           Variable("BEREFID", "Reference ID", "Char", "Exp"),
           Variable("BETERM", "Reported Term for the Biospecimen Event", "Char", "Req"),
           Variable("BEDECOD", "Dictionary-Derived Term", "Char", "Perm"),
           Variable("BECAT", "Category for Biospecimen Event", "Char", "Perm"),
           Variable("BESTDTC", "Start Date/Time of Biospecimen Event", "Char", "Exp"),
           Variable("BEENDTC", "End Date/Time of Biospecimen Event", "Char", "Perm"),
           Variable("BESTDY", "Study Day of Start of Event", "Num", "Perm")),
    "RELSPEC": (Variable("STUDYID", "Study Identifier", "Char", "Req"),
                Variable("USUBJID", "Unique Subject Identifier", "Char", "Exp"),
                Variable("REFID", "Specimen Identifier", "Char", "Req"),
                Variable("SPEC", "Specimen Type", "Char", "Perm"),
                Variable("PARENT", "Specimen Parent", "Char", "Exp"),
                Variable("LEVEL", "Specimen Level", "Num", "Req")),
}
PRODUCT_KEYS = {"BE": ("STUDYID", "USUBJID", "BESEQ"), "RELSPEC": ("STUDYID", "USUBJID", "REFID")}
PRODUCT_CLASSES = {"BE": "EVENTS", "RELSPEC": "RELATIONSHIP"}
PRODUCT_LABELS = {"BE": "Biospecimen Events", "RELSPEC": "Related Specimens"}
_MADE = {"collection": ("Collecting", "COLLECTION"), "processing": ("Processing", "PREPARATION"),
         "aliquot": ("Aliquoting", "PREPARATION"), "dose": ("Preparing dose", "PREPARATION")}


def register() -> None:
    """Add BE and RELSPEC to the package's tables (once; the same values every time)."""
    SPEC.update(PRODUCT_SPEC)
    KEYS.update(PRODUCT_KEYS)
    CLASSES.update(PRODUCT_CLASSES)
    LABELS.update(PRODUCT_LABELS)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="minutes")


def _subject_products(data: TrialProducts, subjects: set[str]) -> dict[str, list[str]]:
    """Each subject's products and their lines back to the collection, collection first."""
    out: dict[str, list[str]] = {}
    for key, p in sorted(data.products.items(), key=lambda kv: (kv[1].prepared_at, kv[0])):
        who = owner(p)
        if who not in subjects:
            continue
        keys = out.setdefault(who, [])
        for q in lineage(data.products, key):
            if q.key not in keys:
                keys.append(q.key)
    return out


def product_datasets(study: str, datasets: Mapping[str, pd.DataFrame],
                     data: TrialProducts) -> dict[str, pd.DataFrame]:
    """``datasets`` (as :func:`~trialdesk.outcomes.export_sdtm.sdtm_datasets` made them) with
    EXREFID filled from the infusions, and BE and RELSPEC added when a subject has a product.
    Patients are subjects ``STUDYID-patient`` of DM; RFSTDTC is their day 1."""
    register()
    out = dict(datasets)
    dm = datasets["DM"]
    start = {u: pd.Timestamp(d) for u, d in zip(dm["USUBJID"], dm["RFSTDTC"], strict=True) if d}
    patients = {u.removeprefix(f"{study}-"): u for u in dm["USUBJID"]}
    if "EX" in datasets:
        out["EX"] = _with_refs(datasets["EX"], data, patients)
    lines = _subject_products(data, set(patients))
    be: list[dict[str, Any]] = []
    relspec: list[dict[str, Any]] = []
    for patient, keys in sorted(lines.items()):
        subject = patients[patient]
        events: list[tuple[datetime, str, str, str]] = []
        for key in keys:
            p = data.products[key]
            term, category = _MADE[p.stage]
            events.append((p.prepared_at, key, term, category))
            events += [(h.at, key, "Transferring", "TRANSPORT") for h in data.handovers.get(key, ())]
            relspec.append({"STUDYID": study, "USUBJID": subject, "REFID": key, "SPEC": None,
                            "PARENT": p.parent.text if p.parent else None,
                            "LEVEL": len(lineage(data.products, key))})
        for seq, (at, key, term, category) in enumerate(sorted(events), start=1):
            delta = (pd.Timestamp(at.date()) - start[subject]).days if subject in start else None
            be.append({"STUDYID": study, "DOMAIN": "BE", "USUBJID": subject, "BESEQ": seq,
                       "BEREFID": key, "BETERM": term, "BEDECOD": None, "BECAT": category,
                       "BESTDTC": _iso(at), "BEENDTC": None,
                       "BESTDY": None if delta is None else delta + 1 if delta >= 0 else delta})
    if be:
        out["BE"] = _ordered("BE", pd.DataFrame(be))
        out["RELSPEC"] = _ordered("RELSPEC", pd.DataFrame(relspec))
    return out


def _with_refs(ex: pd.DataFrame, data: TrialProducts, patients: Mapping[str, str]) -> pd.DataFrame:
    """EX with each infusion's product identifier on the EX record that gave it."""
    ex = ex.copy()
    if "EXREFID" not in ex.columns:
        ex["EXREFID"] = None
    ex["EXREFID"] = ex["EXREFID"].astype(object)
    for i in sorted(data.infusions, key=lambda i: (i.start, i.product)):
        product = data.products.get(i.product)
        spec = data.specs.get(product.spec_id) if product else None
        if spec is None or spec.agent is None or i.patient not in patients:
            continue
        day = i.start.date().isoformat()
        match = ex[(ex["USUBJID"] == patients[i.patient]) & (ex["EXTRT"] == spec.agent.upper())
                   & (ex["EXSTDTC"].astype(str).str[:10] <= day)
                   & (ex["EXENDTC"].fillna(ex["EXSTDTC"]).astype(str).str[:10] >= day)
                   & ex["EXREFID"].isna()]
        if len(match):
            ex.loc[match.index[0], "EXREFID"] = i.product
    return ex
