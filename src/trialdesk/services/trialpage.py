"""The trial page as the registry shows it, beside what trialdesk adds.

From the protocol's registry modules (an imported ClinicalTrials.gov record, or what a seed
protocol carries): key dates, sponsor and collaborators, contacts and locations — nearest
first, with the great-circle distance in km, when a place is given —, outcome measures with
their time frames (laid out by the protocol's page), references, and the line naming
where the data came from. A record with
a thousand sites shows the nearest (or first) few with the count and the sites per country,
so the page stays short. Regimens, criteria with their rules and the lint findings come from
:func:`trialdesk.services.catalogue.registry_page`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from trialdesk.errors import RegistryError
from trialdesk.protocol.model import Registry
from trialdesk.registry.gazetteer import Place, resolve_place
from trialdesk.registry.items import unescape
from trialdesk.registry.search import great_circle_km
from trialdesk.services.catalogue import registry_page
from trialdesk.services.context import Services

SITES_SHOWN = 10
NEAR_LABEL = "Nearest sites to"
_DATES = [
    ("start_date", "start_date_type", "Study start"),
    ("primary_completion_date", "primary_completion_date_type", "Primary completion"),
    ("completion_date", "completion_date_type", "Study completion"),
    ("first_posted", None, "First posted"),
    ("last_update_posted", None, "Last update posted"),
]
_REFERENCE_TYPES = {"BACKGROUND": "Background", "RESULT": "Result", "DERIVED": "Derived"}


def _words(code: str | None) -> str | None:
    """ "NOT_YET_RECRUITING" as "Not yet recruiting"."""
    return code.replace("_", " ").capitalize() if code else None


def _address(loc: Any) -> str:
    return ", ".join(x for x in (loc.city, loc.state, loc.zip, loc.country) if x)


def _contact(c: Any) -> dict[str, Any]:
    return {"name": c.name, "role": _words(c.role), "phone": c.phone, "email": c.email}


def locations(registry: Registry, place: Place | None, shown: int = SITES_SHOWN) -> dict[str, Any]:
    """The sites: the nearest ``shown`` to ``place`` (else the first in the record's order),
    each with its distance; the count; the sites per country, most first."""
    cl = registry.contacts_locations
    sites = []
    for order, loc in enumerate(cl.locations):
        km = (great_circle_km(place.lat, place.lon, loc.geo.lat, loc.geo.lon)
              if place is not None and loc.geo is not None else None)
        sites.append((order, km, loc))
    if place is not None:
        sites.sort(key=lambda s: (s[1] is None, s[1] or 0.0, s[0]))
    countries = Counter(loc.country or "Country not given" for loc in cl.locations)
    return {
        "total": len(cl.locations),
        "count_in_record": cl.location_count,
        "with_geo": sum(1 for loc in cl.locations if loc.geo is not None),
        "shown": [
            {"facility": loc.facility or "Site", "status": _words(loc.status),
             "address": _address(loc), "distance_km": None if km is None else round(km),
             "contacts": [_contact(c) for c in loc.contacts]}
            for _, km, loc in sites[:shown]
        ],
        "countries": sorted(countries.items(), key=lambda kv: (-kv[1], kv[0])),
        "central_contacts": [_contact(c) for c in cl.central_contacts],
        "officials": [{"name": o.name, "affiliation": o.affiliation, "role": _words(o.role)}
                      for o in cl.overall_officials],
    }


def registry_sections(registry: Registry, place: Place | None = None,
                      shown: int = SITES_SHOWN) -> dict[str, Any]:
    """What the registry record shows that the protocol's own sections do not."""
    status = registry.status
    dates = []
    for field, kind, label in _DATES:
        value = getattr(status, field)
        if value:
            estimated = kind is not None and getattr(status, kind) == "ESTIMATED"
            dates.append({"label": label, "date": value, "estimated": estimated})
    sponsor = registry.sponsor
    party = sponsor.responsible_party
    nct = registry.identification.nct_id
    return {
        "nct_id": nct,
        "url": f"https://clinicaltrials.gov/study/{nct}" if nct else None,
        "sourced": f"Data sourced from ClinicalTrials.gov, {nct}" if nct else None,
        "dates": dates,
        "verified": status.status_verified_date,
        "why_stopped": status.why_stopped,
        "sponsor": sponsor.lead_sponsor.name,
        "collaborators": [c.name for c in sponsor.collaborators],
        "responsible_party": (
            ", ".join(x for x in (party.investigator_full_name, party.investigator_title,
                                  party.investigator_affiliation) if x)
            or _words(party.type)) if party else None,
        "references": [
            {"citation": r.citation, "type": _REFERENCE_TYPES.get(r.type or "", _words(r.type)),
             "pmid": r.pmid,
             "url": f"https://pubmed.ncbi.nlm.nih.gov/{r.pmid}/" if r.pmid else None}
            for r in registry.references
        ],
        "locations": locations(registry, place, shown),
        "place": None if place is None else {"name": place.name, "source": place.source},
    }


def trial_page(ctx: Services, trial_id: str, number: int | None = None, *,
               near: str | None = None) -> dict[str, Any]:
    """The trial page: the protocol's sections and its registry record's; ``near`` (a place
    name or ``LAT,LON``) orders the sites by distance. An unknown place is reported on the
    page (``near_error``, naming the field by its label), not raised."""
    version, compiled = ctx.catalogue.trial(trial_id, number)
    page = registry_page(version, compiled, ctx.store.protocol_versions(trial_id))
    registry = compiled.protocol.registry
    place, error = None, None
    if near and near.strip():
        try:
            place = resolve_place(near, [registry])
        except RegistryError as exc:
            error = f"{NEAR_LABEL}: {exc.reason}"
    page["registry"] = registry_sections(registry, place)
    # the record's text as it reads: "\>= 2.0" is ">= 2.0" (the registry's markdown escapes)
    for key in ("about", "description"):
        if page.get(key):
            page[key] = unescape(page[key])
    for outcome in (o for kind in page["outcomes"].values() for o in kind):
        if outcome.get("description"):
            outcome["description"] = unescape(outcome["description"])
    page["near"] = near or ""
    page["near_error"] = error
    return page
