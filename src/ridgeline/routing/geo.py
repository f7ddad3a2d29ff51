"""Offline geolocation: IP addresses to country (iptocc's embedded database) and, when
the operator supplies a MaxMind-format city database (GeoLite2-City, GeoIP2-City, or any
.mmdb with the same record shape), to country, region (a US state's ISO code) and city.

Nothing leaves the machine: no geolocation web service is ever called. Documentation
and private ranges are in no database and locate nowhere.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ridgeline.errors import BadInput

#: Environment variable naming the operator's city database.
ENV_CITY_DB = "RIDGELINE_GEOIP_CITY_DB"


@dataclass(frozen=True, slots=True)
class Place:
    """Where something is: country (ISO 3166-1 alpha-2), optional state/region, city."""

    country: str
    state: str | None = None
    city: str | None = None
    source: str = ""

    @property
    def text(self) -> str:
        return "/".join(p for p in (self.country, self.state) if p)


class BadCityDatabase(BadInput):
    """The city database cannot be opened or is not a MaxMind DB."""

    code = "bad_city_database"


class Geolocator:
    """IP -> Place, from the city database first (when given), then iptocc."""

    def __init__(self, city_db: str | Path | None = None) -> None:
        path = city_db if city_db is not None else os.environ.get(ENV_CITY_DB) or None
        self.city_db = Path(path) if path else None
        self._reader: Any = None
        if self.city_db is not None:
            import maxminddb

            try:
                self._reader = maxminddb.open_database(str(self.city_db))
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                raise BadCityDatabase(
                    f"cannot open the city database {self.city_db}: {exc}; "
                    "expected a MaxMind DB (.mmdb) file"
                ) from None
        self._cache: dict[str, Place | None] = {}

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def locate(self, ip: str) -> Place | None:
        """Where an IP address is, or None (unknown, private, documentation or invalid)."""
        hit = self._cache.get(ip, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        place = self._locate(ip)
        if len(self._cache) < 200_000:
            self._cache[ip] = place
        return place

    def _locate(self, ip: str) -> Place | None:
        try:
            addr = ipaddress.ip_address(ip.strip())
        except ValueError:
            return None
        if self._reader is not None:
            record = self._reader.get(str(addr))
            if isinstance(record, dict):
                country = (record.get("country") or record.get("registered_country") or {}).get(
                    "iso_code"
                )
                if country:
                    subs = record.get("subdivisions") or []
                    state = subs[0].get("iso_code") if subs else None
                    city = ((record.get("city") or {}).get("names") or {}).get("en")
                    name = self.city_db.name if self.city_db else "?"
                    return Place(str(country), state, city, f"city database {name}")
        if addr.is_private or addr.is_reserved or addr.is_loopback or addr.is_multicast:
            return None
        country = _iptocc(str(addr))
        return Place(country, None, None, "iptocc") if country else None


@lru_cache(maxsize=1)
def _iptocc_fn() -> Any:
    import iptocc

    return iptocc.country_code


def _iptocc(ip: str) -> str | None:
    code = _iptocc_fn()(ip)
    return str(code) if code else None
