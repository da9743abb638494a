"""Response assessments typed into forms (no JSON): INRC 2017 components and RECIST 1.1
lesion tables read into the documents the cores assess, the computed response and its
reasoning shown before the investigator signs, bad input refused by label with nothing
stored, and the same through the API.

Known answers: INRC 2017 (Park JR et al., J Clin Oncol 2017;35:2580; thresholds as in
trialdesk.response.inrc from the NCI PDQ summary): primary 60 → 40 mm (−33%: PR), MIBG Curie
12 → 4 (relative 0.33 ≤ 0.5: PR), marrow 30% → 3% (≤ 5%: MD), soft tissue not involved, no
new lesions → overall PR (the example of examples/response/inrc-pr.json). RECIST 1.1
(Eisenhauer 2009): target sum 60 mm at baseline, 35 mm now (−41.7% ≥ 30%: PR), non-target
present (non-CR/non-PD), no new lesion → PR.
"""

from __future__ import annotations

from typing import Any

import pytest

from trialdesk.forms.parse import FormError
from trialdesk.forms.response import (
    INRC_FIELDS,
    inrc_document,
    recist_baseline,
    recist_time_point,
)
from trialdesk.response import inrc
from trialdesk.response.documents import inrc_time_point, recist_series

INRC_PR = {
    "assessed_on": "2026-11-21",
    "primary.status": "involved", "primary.baseline_mm": "60", "primary.current_mm": "40",
    "primary.uptake_resolved": "no",
    "soft.status": "not_involved",
    "bone.status": "involved", "bone.method": "mibg", "bone.mibg_scale": "curie",
    "bone.baseline_score": "12", "bone.current_score": "4",
    "marrow.status": "involved", "marrow.baseline_aspirate_pct": "30",
    "marrow.current_aspirate_pct": "3", "marrow.current_biopsy_pct": "2",
    "new.soft_tissue": "no", "new.mibg_bone_site": "no", "new.fdg_bone_site": "no",
}


def test_typed_inrc_findings_give_the_document_and_pr() -> None:
    doc = inrc_document(INRC_PR)
    assert doc["primary"] == {"baseline_mm": 60, "nadir_mm": 60, "current_mm": 40,
                              "uptake_resolved": False}
    assert doc["marrow"] == {"baseline_pct": 30, "current_pct": 3}  # the higher sample
    assert doc["soft_tissue"] == "not_involved"
    result = inrc.assess(inrc_time_point(doc))
    assert result.overall.value == "PR"
    assert [c.response.value for c in result.components] == ["PR", "PR", "MD"]


def test_an_empty_nadir_is_the_smallest_earlier_value() -> None:
    earlier = [{"primary": {"baseline_mm": 60, "nadir_mm": 60, "current_mm": 35}}]
    doc = inrc_document({**INRC_PR, "primary.current_mm": "45"}, earlier=earlier)
    assert doc["primary"]["nadir_mm"] == 35
    # 35 → 45 mm is +28.6% and +10 mm: PD against the nadir (INRC 2017: > 20% and ≥ 5 mm).
    assert inrc.assess(inrc_time_point(doc)).overall.value == "PD"


BAD_INRC: list[tuple[str, dict[str, str], str]] = [
    ("letters", {"primary.current_mm": "forty"},
     "Primary tumour: longest diameter now (CT or MRI): enter a number"),
    ("NaN", {"primary.baseline_mm": "NaN"},
     "Primary tumour: longest diameter at baseline (CT or MRI): enter a finite number"),
    ("Infinity", {"marrow.current_biopsy_pct": "Infinity"},
     "Bone marrow: tumour infiltration now, biopsy: enter a finite number"),
    ("percent out of range", {"marrow.current_aspirate_pct": "120"},
     "Bone marrow: tumour infiltration now, aspirate: enter a value from 0 to 100 %"),
    ("Curie above 30", {"bone.current_score": "40"},
     "Bone metastases: MIBG score now: a Curie score is 0 to 30"),
    ("no scale", {"bone.mibg_scale": ""}, "Bone metastases: MIBG score: choose Curie or SIOPEN"),
    ("value for a component not involved", {"soft.current_sum_mm": "12"},
     "Metastatic soft tissue: sum of target-lesion diameters now: metastatic soft tissue is "
     "marked not involved"),
    ("a list with letters", {"soft.status": "involved", "soft.node_short_axes_mm": "8, abc"},
     "Metastatic soft tissue: short axes of the target lymph nodes now, mm: enter sizes"),
    ("half the new-lesion answers", {"new.fdg_bone_site": ""},
     "New lesions: a new FDG-avid bone site: answer yes or no"),
]


@pytest.mark.parametrize(("what", "change", "message"), BAD_INRC, ids=[b[0] for b in BAD_INRC])
def test_bad_inrc_input_is_refused_with_the_label(what: str, change: dict[str, str],
                                                  message: str) -> None:
    with pytest.raises(FormError) as caught:
        inrc_document({**INRC_PR, **change})
    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems


def test_every_inrc_field_has_a_component_label_and_numbers_a_range() -> None:
    for f in INRC_FIELDS:
        assert f.label.split(":")[0] in ("Primary tumour", "Metastatic soft tissue",
                                         "Bone metastases", "Bone marrow", "New lesions")
        if f.widget == "number":
            assert f.minimum is not None and f.maximum is not None


BASELINE = {"target1.organ": "liver", "target1.kind": "non_nodal", "target1.method": "ct",
            "target1.size_mm": "42", "target2.organ": "mediastinal node",
            "target2.kind": "lymph_node", "target2.method": "ct", "target2.size_mm": "18",
            "nontarget1.organ": "bone", "nontarget1.kind": "non_nodal",
            "nontarget1.method": "other"}


def test_the_recist_baseline_table_gives_the_lesions() -> None:
    doc = recist_baseline(BASELINE)
    assert [t["id"] for t in doc["targets"]] == ["T1", "T2"]
    assert doc["non_targets"][0] == {"id": "N1", "organ": "bone", "kind": "non_nodal",
                                     "method": "other"}
    point = recist_time_point({"target.T1": "20", "target.T2": "9", "nontarget.N1": "absent",
                               "new_lesions": "no"}, doc)
    base, points, _ = recist_series({"baseline": doc, "time_points": [{**point, "day": 42}]})
    assert base.sum_mm == 60 and points[0].targets == {"T1": 20, "T2": 9}
    with pytest.raises(FormError) as caught:
        recist_baseline({**BASELINE, "target3.organ": "lung"})
    assert caught.value.problems == [
        "Target lesion T3: give the organ or site, nodal or not, the method and the size in mm"]
    with pytest.raises(FormError) as caught:
        recist_time_point({"target.T1": "-3", "new_lesions": ""}, doc)
    assert "Target lesion T1 (liver, ct): size now: enter a value from 0 to 1000 mm" in (
        caught.value.problems)
    assert "New lesions: answer yes or no" in caught.value.problems


# ---------------------------------------------------------------------------- web


def _post(client: Any, url: str, data: dict[str, str]) -> Any:
    return client.post(url, data={"csrf_token": client.csrf, **data},
                       headers={"accept": "text/html"}, follow_redirects=False)


NB = "NBNK-0001"  # enrolled, INRC 2017 (NB-NK-2026)
REFNOT = "REFNOT-0002"  # enrolled, RECIST 1.1 baseline and one time point (Refnot R-2)


def test_inrc_preview_then_sign_on_the_web(web: Any) -> None:
    inv = web.client("investigator")
    url = f"/patients/{NB}/responses/inrc/form"
    assert f'href="{url}"' in inv.get(f"/patients/{NB}/responses").text
    page = inv.get(url)
    assert page.status_code == 200 and "textarea" not in page.text
    assert "Bone marrow: tumour infiltration now, aspirate" in page.text
    before = len(web.store.responses(NB))
    preview = _post(inv, url, {**INRC_PR, "action": "preview"})
    assert preview.status_code == 200
    assert 'id="overall">PR<' in preview.text and 'id="reasoning"' in preview.text
    assert len(web.store.responses(NB)) == before  # a preview stores nothing
    wrong = _post(inv, url, {**INRC_PR, "action": "sign", "password": "guess"})
    assert wrong.status_code == 422 and "Your password: the password is wrong" in wrong.text
    assert len(web.store.responses(NB)) == before
    signed = _post(inv, url, {**INRC_PR, "action": "sign", "password": "investigator-demo",
                              "reason": "after course 2"})
    assert signed.status_code == 303, signed.text[:400]
    rows = web.store.responses(NB)
    assert len(rows) == before + 1 and rows[-1].overall == "PR"
    assert rows[-1].document["marrow"] == {"baseline_pct": 30, "current_pct": 3}


def test_inrc_bad_input_on_the_web_is_named_and_nothing_is_stored(web: Any) -> None:
    inv = web.client("investigator")
    before = len(web.store.responses(NB))
    r = _post(inv, f"/patients/{NB}/responses/inrc/form", {
        **INRC_PR, "assessed_on": "2027-02-01", "primary.current_mm": "NaN", "action": "sign",
        "password": "investigator-demo"})
    assert r.status_code == 422
    assert "Date of the assessment: 2027-02-01 is in the future" in r.text
    assert "Primary tumour: longest diameter now (CT or MRI): enter a finite number" in r.text
    assert 'value="NaN"' in r.text and "$." not in r.text
    assert len(web.store.responses(NB)) == before
    # A value the INRC core refuses is named by its field's label too.
    r = _post(inv, f"/patients/{NB}/responses/inrc/form", {
        **INRC_PR, "primary.nadir_mm": "70", "action": "preview"})
    assert r.status_code == 422
    assert ("Primary tumour: smallest longest diameter on study before now: the nadir cannot "
            "exceed baseline") in r.text
    # A coordinator may not record a response.
    assert web.client("coordinator").get(f"/patients/{NB}/responses/inrc/form").status_code == 403


def test_recist_time_point_with_the_lesion_history_and_the_api(web: Any) -> None:
    web.clock.advance(days=21)
    inv = web.client("investigator")
    page = inv.get(f"/patients/{REFNOT}/responses/recist/form").text
    assert "Target lesions at each time point" in page and "30 mm" in page  # earlier L1
    assert "Target lesion L1 (liver, ct): size now" in page
    values = {"assessed_on": "2026-12-12", "target.L1": "25", "target.P1": "10",
              "nontarget.N1": "present", "new_lesions": "no"}
    h = {"x-csrf-token": inv.csrf}
    form = inv.get(f"/api/patients/{REFNOT}/responses/recist/form").json()
    assert form["kind"] == "time_point" and {f["name"] for f in form["fields"]} == {
        "target.L1", "target.P1", "nontarget.N1", "new_lesions"}
    before = len(web.store.responses(REFNOT))
    preview = inv.post(f"/api/patients/{REFNOT}/responses/recist/preview",
                       json={"values": values}, headers=h).json()
    assert preview["overall"] == "PR" and preview["result"]["sum_mm"] == 35
    assert len(web.store.responses(REFNOT)) == before
    bad = inv.post(f"/api/patients/{REFNOT}/responses/recist/form", headers=h, json={
        "values": {**values, "target.L1": "Infinity"}, "password": "investigator-demo"})
    assert bad.status_code == 422
    assert "Target lesion L1 (liver, ct): size now: enter a finite number" in bad.json()["error"]
    signed = inv.post(f"/api/patients/{REFNOT}/responses/recist/form", headers=h, json={
        "values": values, "password": "investigator-demo", "reason": "restaging CT"})
    assert signed.status_code == 201, signed.text
    assert signed.json()["overall"] == "PR"
    assert len(web.store.responses(REFNOT)) == before + 1
