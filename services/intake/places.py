"""Which county, street and community a point lies in, from the divisions projection.

Boundaries are parsed once per process and re-read when the projection changes
(its row count or highest id moves), so a submit costs one tiny query.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from shapely.geometry import Point, shape
from shapely.prepared import prep
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


class Places:
    def __init__(self):
        self._lock = threading.Lock()
        self._version: tuple | None = None
        self._areas: list[Area] = []

    def _areas_for(self, session: Session) -> list[Area]:
        version = tuple(session.execute(select(func.count(), func.max(Division.id))).one())
        if version != self._version:
            with self._lock:
                areas = []
                for d in session.scalars(select(Division)):
                    geom = shape(json.loads(d.boundary))
                    areas.append(Area(d.code, d.kind, d.name, geom.bounds, prep(geom)))
                self._areas, self._version = areas, version
        return self._areas

    def locate(self, session: Session, lon: float, lat: float) -> dict[str, str]:
        """{kind: code} of every division containing the point (county, street, community)."""
        point = Point(lon, lat)
        found: dict[str, str] = {}
        for area in self._areas_for(session):
            x0, y0, x1, y1 = area.bounds
            if x0 <= lon <= x1 and y0 <= lat <= y1 and area.geom.covers(point):
                found.setdefault(area.kind, area.code)
        return found
