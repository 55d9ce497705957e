"""Which county, street and community a point lies in, from the divisions projection.

Boundaries are parsed once per process and re-read when the projection changes
(its row count or highest id moves). Whether it moved is asked at most once a
second, and at once for a point no county covers (its county may have just
arrived): most submissions cost no query here at all.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import shapely
from shapely.geometry import shape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .tables import Division


@dataclass(frozen=True)
class Area:
    code: str
    kind: str
    name: str
    bounds: tuple[float, float, float, float]
    geom: object


CHECK_SECONDS = 1.0


class Places:
    def __init__(self, check_seconds: float = CHECK_SECONDS):
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._version: tuple | None = None
        self._checked_at = 0.0
        self._areas: list[Area] = []

    def _areas_for(self, session: Session, *, check: bool = False) -> list[Area]:
        if not check and self._version is not None and time.monotonic() - self._checked_at < self.check_seconds:
            return self._areas
        version = tuple(session.execute(select(func.count(), func.max(Division.id))).one())
        self._checked_at = time.monotonic()
        if version != self._version:
            with self._lock:
                areas = []
                for d in session.scalars(select(Division)):
                    geom = shape(json.loads(d.boundary))
                    shapely.prepare(geom)
                    areas.append(Area(d.code, d.kind, d.name, geom.bounds, geom))
                self._areas, self._version = areas, version
        return self._areas

    def locate(self, session: Session, lon: float, lat: float) -> dict[str, str]:
        """{kind: code} of every division containing the point (county, street, community)."""
        found = self._locate(self._areas_for(session), lon, lat)
        if "county" not in found:
            found = self._locate(self._areas_for(session, check=True), lon, lat)
        return found

    @staticmethod
    def _locate(areas: list[Area], lon: float, lat: float) -> dict[str, str]:
        found: dict[str, str] = {}
        for area in areas:
            x0, y0, x1, y1 = area.bounds
            # intersects: a point on the boundary counts (covers), without building a Point
            if x0 <= lon <= x1 and y0 <= lat <= y1 and shapely.intersects_xy(area.geom, lon, lat):
                found.setdefault(area.kind, area.code)
        return found
