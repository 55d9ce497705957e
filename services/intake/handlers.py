"""What intake listens to.

* ``intake.places``: grids' divisions, buildings and grid names (where a
  petition may come from, and how the timeline names a grid).
* ``intake.timeline``: every step of the case dispatch runs, put on the
  resident's timeline; the petition's status and its handlers follow.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from contracts import dispatch as dispatch
from contracts.grids import BUILDING_CREATED, DIVISION_CREATED, GRID_CREATED, GRID_REDRAWN
from gridkit.consumer import Event, Subscriptions
from gridkit.db import insert_at_commit

from . import domain
from .tables import Building, Division, GridName, Petition, Step, utcnow

log = logging.getLogger(__name__)
subscriptions = Subscriptions("intake")


# --- places ---------------------------------------------------------------------------------

@subscriptions.on(DIVISION_CREATED, purpose="places")
def remember_division(session: Session, event: Event) -> None:
    d = event.data
    row = session.get(Division, d["id"]) or Division(id=d["id"])
    row.code, row.name, row.kind, row.boundary = d["code"], d["name"], d["kind"], json.dumps(d["boundary"])
    session.add(row)


@subscriptions.on(BUILDING_CREATED, purpose="places")
def remember_building(session: Session, event: Event) -> None:
    d = event.data
    lon, lat = d["location"]["coordinates"][:2]
    row = session.get(Building, d["id"]) or Building(id=d["id"])
    row.name, row.grid_id, row.lon, row.lat = d["name"], d["grid_id"], float(lon), float(lat)
    session.add(row)


def remember_grid(session: Session, event: Event) -> None:
    d = event.data
    row = session.get(GridName, d["id"]) or GridName(id=d["id"])
    row.name, row.network = d["name"], d["network"]
    row.division_code = (d.get("division") or {}).get("code")
    session.add(row)


subscriptions.on(GRID_CREATED, purpose="places")(remember_grid)
subscriptions.on(GRID_REDRAWN, purpose="places")(remember_grid)


# --- the case, as the resident sees it ------------------------------------------------------

def add_step(session: Session, petition_id: str, kind: str, at, **params) -> None:
    # Written at commit: a timeline line is never read back in the transaction that writes
    # it, and on busy paths a statement of its own cost more than the rest of the step.
    insert_at_commit(session, Step.__table__, {
        "petition_id": petition_id, "kind": kind, "at": at or utcnow(),
        "params": json.dumps(params, ensure_ascii=False, default=str)})


# Built once: every case event reads its petition, and an assignment its grid's name
# (building a statement cost as much as running it).
PETITION_LOCKED = select(Petition).where(Petition.id == bindparam("id")).with_for_update()
GRID_NAME = select(GridName.name).where(GridName.id == bindparam("id"))


def _petition(session: Session, event: Event) -> Petition | None:
    # Locked once per transaction: a batch often holds a case's opened and assigned together.
    locked = session.info.setdefault("locked_petitions", {})
    if event.data["petition_id"] in locked:
        return locked[event.data["petition_id"]]
    petition = session.execute(PETITION_LOCKED, {"id": event.data["petition_id"]}).scalar_one_or_none()
    locked[event.data["petition_id"]] = petition
    if petition is None:
        # Not ours (another intake's test data, or a case opened by hand): nothing to show.
        log.warning("case event for unknown petition", extra={"petition_id": event.data["petition_id"]})
    return petition


def _move(petition: Petition, status: str, *, backwards: bool = False) -> None:
    petition.status = domain.next_status(petition.status, status, backwards=backwards)
    petition.updated_at = utcnow()


def _grid_name(session: Session, grid_id: int | None) -> str | None:
    if grid_id is None:
        return None
    names = session.info.setdefault("grid_names", {})  # a batch's assignments in one grid ask once
    if grid_id not in names:
        names[grid_id] = session.execute(GRID_NAME, {"id": grid_id}).scalar_one_or_none()
    return names[grid_id] or f"#{grid_id}"


def on_case(event_type, purpose: str = "timeline"):
    def register(handler):
        def run(session: Session, event: Event) -> None:
            # What these handlers read (the petition, locked once; grid and division names)
            # never depends on what they wrote: the batch's rows go in together at commit.
            with session.no_autoflush:
                petition = _petition(session, event)
                if petition is not None:
                    petition.case_id = event.data["case_id"]
                    if event.data.get("grid_id") is not None:
                        petition.grid_id = event.data["grid_id"]
                    handler(session, petition, event.data)

        run.__name__ = handler.__name__
        return subscriptions.on(event_type, purpose=purpose)(run)

    return register


@on_case(dispatch.CASE_OPENED)
def case_opened(session, petition, d):
    add_step(session, petition.id, "opened_catch_all" if d["catch_all"] else "opened", d["at"])


@on_case(dispatch.CASE_ASSIGNED)
def case_assigned(session, petition, d):
    petition.add_handlers(d["offered_to"])
    _move(petition, "assigned")
    grid = _grid_name(session, d["grid_id"])
    add_step(session, petition.id, "assigned" if grid else "assigned_desk", d["at"], grid=grid)


@on_case(dispatch.CASE_CLAIMED)
def case_claimed(session, petition, d):
    petition.add_handlers([d["by"]])
    _move(petition, "claimed")
    add_step(session, petition.id, "claimed", d["at"])


@on_case(dispatch.CASE_PROGRESSED)
def case_progressed(session, petition, d):
    if d["kind"] == "returned":
        _move(petition, "submitted", backwards=petition.status in ("assigned", "claimed"))
    add_step(session, petition.id, "progressed", d["at"], step=d["kind"], text=d.get("text") or "",
             due=d.get("handle_due"))


@on_case(dispatch.CASE_ESCALATED)
def case_escalated(session, petition, d):
    petition.add_handlers(d["offered_to"])
    division = session.scalars(select(Division).where(Division.code == d["division_code"])).first() \
        if d.get("division_code") else None
    # 督办 (manual) reads as supervision; the supervisor's words stay with staff
    add_step(session, petition.id, "supervised" if d["reason"] == "manual" else "escalated", d["at"],
             level=d["level"], division=division.name if division else None)


@on_case(dispatch.CASE_HANDED_BACK)
def case_handed_back(session, petition, d):
    # Whoever has it now sees the case as its handlers do; the resident hears only that the
    # worker changed, and only when someone had claimed it.
    petition.add_handlers(d["offered_to"])
    if d["handler"] is None:
        return
    _move(petition, "assigned", backwards=petition.status in ("claimed", "reopened"))
    add_step(session, petition.id, "handed_back", d["at"])


@on_case(dispatch.CASE_REASSIGNED)
def case_reassigned(session, petition, d):
    petition.add_handlers([d["to_handler"]])
    _move(petition, "claimed")
    add_step(session, petition.id, "reassigned", d["at"])


@on_case(dispatch.CASE_WHISTLED)
def case_whistled(session, petition, d):
    add_step(session, petition.id, "whistled", d["at"], departments=d["departments"])


@on_case(dispatch.CASE_REPORTED_IN)
def case_reported_in(session, petition, d):
    add_step(session, petition.id, "reported_in", d["at"], department=d["department"])


@on_case(dispatch.CASE_RESOLVED)
def case_resolved(session, petition, d):
    petition.add_handlers([d["by"]])
    _move(petition, "resolved")
    petition.resolved_at, petition.result = d["at"], d["result"]
    add_step(session, petition.id, "resolved", d["at"], result=d["result"])


@on_case(dispatch.CASE_REOPENED)
def case_reopened(session, petition, d):
    # Back with its handler: a fresh resolution is awaited, and a fresh rating.
    _move(petition, "claimed", backwards=True)
    add_step(session, petition.id, "reopened", d["at"], reason=d["reason"])


@on_case(dispatch.CASE_CLOSED)
def case_closed(session, petition, d):
    _move(petition, "closed")
    if petition.status == "closed":
        add_step(session, petition.id, "closed", d["at"])


@on_case(dispatch.DEADLINE_MISSED)
def deadline_missed(session, petition, d):
    add_step(session, petition.id, "deadline_missed", d["at"])
