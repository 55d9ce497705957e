"""The blueprint and what every route module shares: lookups, scope checks, validation answers."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from gridkit.auth import current_principal
from gridkit.db import fetch
from gridkit.problems import Forbidden, Invalid, NotFound, Problem
from gridkit.service import runtime
from gridkit.web import Blueprint

from .. import domain
from ..locate import Registry
from ..tables import Division, Grid, GridVersion, Network, grid_event, utcnow

blp = Blueprint("grids", __name__, description="The grid registry: networks, grids, staffing, "
                "buildings and households, and locating points in every network.")




def registry() -> Registry:
    return runtime().extras["registry"]


class parent_lookup:  # noqa: N801 - used like the function it was
    """The grid tree as scope checks need it: a grid's parent and its divisions."""

    def __init__(self, session: Session):
        self.session = session

    def __call__(self, grid_id: int) -> int | None:
        grid = self.session.get(Grid, grid_id)
        return grid.parent_id if grid else None

    def divisions(self, grid_id: int) -> list[str]:
        grid = self.session.get(Grid, grid_id)
        return division_chain(self.session, grid.division_id if grid else None)


def division_chain(session: Session, division_id: int | None) -> list[str]:
    """Codes of a division and everything above it (community → street → county)."""
    codes: list[str] = []
    while division_id is not None and len(codes) < 10:
        division = session.get(Division, division_id)
        if division is None:
            break
        codes.append(division.code)
        division_id = division.parent_id
    return codes


def current_grid(session: Session, grid_id: int) -> Grid:
    grid = fetch(session, Grid, grid_id, "grid")
    return grid


def latest_version(session: Session, grid_id: int) -> GridVersion:
    return session.execute(select(GridVersion).where(GridVersion.grid_id == grid_id)
                           .order_by(GridVersion.version.desc()).limit(1)).scalar_one()


def grid_data(session: Session, grid: Grid, version: GridVersion | None = None) -> dict:
    version = version or latest_version(session, grid.id)
    network = session.get(Network, grid.network_id)
    division = session.get(Division, grid.division_id) if grid.division_id else None
    return grid_event(grid, version, network.code, division)


def network_by_code(session: Session, code: str) -> Network:
    network = session.execute(select(Network).where(Network.code == code)).scalar_one_or_none()
    if network is None:
        raise NotFound("network", code)
    return network


def authorize_grid(session: Session, grid_id: int | None, roles=domain.GRID_EDITORS,
                   division_id: int | None = None) -> None:
    if not domain.may_act_on(current_principal(), grid_id, roles, parent_lookup(session),
                             division_codes=division_chain(session, division_id)):
        raise Forbidden("this grid is outside your scope")


def geometry_of(session: Session, version: GridVersion):
    return domain.load(version.boundary)


def current_geom(session: Session, grid_id: int):
    version = session.execute(select(GridVersion).where(
        GridVersion.grid_id == grid_id, GridVersion.valid_to.is_(None))).scalar_one()
    return geometry_of(session, version)


def neighbours(session: Session, network_id: int, level: int, kind: str, geom,
               exclude: int | None = None) -> list[tuple[str, object]]:
    """Current grids of one network, level and kind whose bbox meets ``geom``'s."""
    minx, miny, maxx, maxy = geom.bounds
    rows = session.execute(
        select(Grid.code, GridVersion.boundary)
        .join(GridVersion, and_(GridVersion.grid_id == Grid.id, GridVersion.valid_to.is_(None)))
        .where(Grid.network_id == network_id, Grid.level == level, Grid.kind == kind,
               Grid.retired_at.is_(None), Grid.id != (exclude or 0),
               GridVersion.min_lon <= maxx, GridVersion.max_lon >= minx,
               GridVersion.min_lat <= maxy, GridVersion.max_lat >= miny)).all()
    return [(code, domain.load(boundary)) for code, boundary in rows]


def children_of(session: Session, grid_id: int) -> list[tuple[str, object]]:
    rows = session.execute(
        select(Grid.code, GridVersion.boundary)
        .join(GridVersion, and_(GridVersion.grid_id == Grid.id, GridVersion.valid_to.is_(None)))
        .where(Grid.parent_id == grid_id, Grid.retired_at.is_(None))).all()
    return [(code, domain.load(boundary)) for code, boundary in rows]


def reject(findings: domain.Findings) -> None:
    if findings:
        extra = {"overlaps": findings.overlaps} if findings.overlaps else {}
        raise Problem(422, f"invalid value for {next(iter(findings.errors))}",
                      type="validation-error", title="Unprocessable Content",
                      errors=findings.errors, **extra)


def parse_or_reject(boundary, fieldname: str = "boundary"):
    findings = domain.Findings()
    geom = domain.parse(boundary, findings, fieldname)
    reject(findings)
    return geom


def effective(instant: datetime | None, fieldname: str, after: datetime | None = None) -> datetime:
    """A validity bound: now by default, never in the future, after the last change."""
    now = utcnow()
    instant = instant or now
    if instant > now + timedelta(minutes=1):
        raise Invalid({fieldname: ["must not be in the future"]})
    after = domain.as_utc(after)
    if after is not None and instant <= after:
        raise Invalid({fieldname: [f"must be after the current version's start ({after.isoformat()})"]})
    return instant
