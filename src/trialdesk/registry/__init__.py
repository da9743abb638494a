"""ClinicalTrials.gov records in and out, criteria items, rule drafts for review, search.

* :mod:`.records` — v2 JSON, v2 search responses and classic XML to the registry model;
* :mod:`.export` — the registry model back to v2 JSON;
* :mod:`.items` — eligibility text split into inclusion and exclusion items;
* :mod:`.extract` — rule drafts in the criteria language, for a person to review;
* :mod:`.importer` — a record to a draft protocol document;
* :mod:`.review` — accept, edit or reject a draft (signed);
* :mod:`.search` and :mod:`.gazetteer` — ranking by text, condition, age, sex and distance.
"""
