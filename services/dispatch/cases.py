"""The service layer: every command on a case, from the HTTP door, the event
door or the sweep. Each runs in the caller's transaction, checks the rules in
domain.py, writes the change, its transition and its events together.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from gridkit.auth import Principal

from . import domain, workdays
from .domain import (
    AWAITING_APPROVAL,
    CLAIMED,
    CLOSED,
    OFFERED,
    REOPENED,
    RESOLVED,
    RETURNED,
    REVIEWING,
    NotPermitted,
    Refused,
    aware,
    due_after,
    require,
)
from .events import (
    CASE_ASSIGNED,
    CASE_CLAIMED,
    CASE_CLOSED,
    CASE_ESCALATED,
    CASE_HANDED_BACK,
    CASE_OPENED,
    CASE_PROGRESSED,
    CASE_REASSIGNED,
    CASE_REOPENED,
    CASE_REPORTED_IN,
    CASE_RESOLVED,
    CASE_UNATTENDED,
    CASE_WHISTLED,
    DEADLINE_APPROACHING,
    DEADLINE_MISSED,
)
from .projection import Snapshot, enabled, granted, people_on_rung
from .tables import (
    AccountStatus,
    Case,
    CommunitySettings,
    Consultation,
    Extension,
    GridStaff,
    Note,
    Offer,
    StaffGrant,
    Summons,
    Transition,
    Whistle,
    outbox,
)

log = logging.getLogger(__name__)

# Bounded labels only (never case or user ids).
CLAIMS = Counter("gridgov_dispatch_claims_total", "Claim attempts by outcome", ["outcome"])
ESCALATIONS = Counter("gridgov_dispatch_escalations_total", "Cases that climbed the ladder",
                      ["reason", "level"])
DEADLINES_MISSED = Counter("gridgov_dispatch_deadlines_missed_total", "Deadlines missed by step", ["step"])
UNATTENDED = Counter("gridgov_dispatch_unattended_total",
                     "Cases left with nobody to offer them to or to approve them (an alert each)",
                     ["queue", "reason"])
HANDED_BACK = Counter("gridgov_dispatch_handed_back_total",
                      "Cases given back because the people who had them left", ["reason"])
# Every series from the start at zero: increase() misses the first count of a series that
# appears with it, and the alerts on these look at increase().
for _step in ("approve", "claim", "handle", "review", "report_in"):
    DEADLINES_MISSED.labels(_step)
for _queue in ("catch_all", "grid"):
    for _reason in ("nobody_to_offer", "no_approver"):
        UNATTENDED.labels(_queue, _reason)
for _outcome in ("won", "conflict", "forbidden"):
    CLAIMS.labels(_outcome)
for _reason in ("claim_deadline", "handle_deadline", "manual"):
    for _level in domain.LEVELS:
        ESCALATIONS.labels(_reason, _level)
for _reason in ("handler_left", "offers_withdrawn"):
    HANDED_BACK.labels(_reason)

DEFAULT_RATING_DAYS = 7


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def divisions(case: Case) -> dict[str, str | None]:
    return {"community": case.community, "street": case.street, "county": case.county}


def place(snapshot: Snapshot, case: Case, session: Session) -> domain.Place:
    departments = tuple(session.execute(select(Summons.department).where(Summons.case_id == case.id)).scalars())
    return domain.Place(snapshot.chain(case.grid_id),
                        tuple(code for code in (case.community, case.street, case.county) if code),
                        departments)


def offered_to(session: Session, case: Case) -> list[str]:
    return sorted(session.execute(select(Offer.user_id).where(Offer.case_id == case.id)).scalars())


def event_base(case: Case, now: datetime) -> dict:
    return {"case_id": case.id, "petition_id": case.petition_id, "reporter_id": case.reporter_id,
            "network": case.network, "grid_id": case.grid_id, "level": case.level, "at": now}


def record(session: Session, event_type, case: Case, now: datetime, **data) -> None:
    outbox.record(session, event_type, event_base(case, now) | data, subject=case.id)


def move(session: Session, case: Case, to: str, *, action: str, by: str | None, now: datetime,
         reason: str | None = None) -> None:
    """Change the state and record the transition (who, when, from, to, why)."""
    session.add(Transition(case_id=case.id, at=now, by=by, action=action, from_state=case.state,
                           to_state=to, level=case.level, reason=reason))
    case.state = to


def start_step(session: Session, case: Case, step: str | None, now: datetime, hours: float | None = None) -> None:
    """Start the clock of a step (approve, claim, handle); None stops it."""
    case.step, case.step_started_at, case.step_missed, case.warned = step, now, False, False
    if step is None or hours is None:
        case.step_due_at = case.yellow_at = None
        return
    working = workdays.for_case(session, case)
    case.step_due_at = due_after(now, hours, working)
    case.yellow_at = domain.warn_at(now, case.step_due_at, working)


def uuid7(now: datetime) -> str:
    """A time-ordered UUID (RFC 9562 v7): cases sort by opening time by id alone."""
    value = (int(now.timestamp() * 1000) & (2**48 - 1)) << 80 | uuid.uuid4().int & (2**80 - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC variant
    return str(uuid.UUID(int=value))


def claim_hours(case: Case) -> float:
    return case.claim_minutes / 60


def handle_hours(case: Case) -> float:
    """The category's handling time: minutes when it gives them (urgent categories), else hours."""
    return case.handle_minutes / 60 if case.handle_minutes else case.handle_hours


def load(session: Session, case_id: str, *, lock: bool = True) -> Case:
    query = select(Case).where(Case.id == case_id)
    case = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if case is None:
        raise LookupError(case_id)
    return case


# Statements every case opened runs, built once: building one cost as much as running it.
COMMUNITY_SETTINGS = select(CommunitySettings).where(CommunitySettings.division_code == bindparam("code"))
CASE_OF_PETITION = select(Case.id).where(Case.petition_id == bindparam("petition_id"))


def community_settings(session: Session, code: str | None) -> CommunitySettings:
    # Remembered for the transaction (a batch of cases in one community asks once).
    known = session.info.setdefault("community_settings", {})
    if code not in known:
        known[code] = session.execute(COMMUNITY_SETTINGS, {"code": code}).scalar_one_or_none() if code else None
    return known[code] or CommunitySettings(division_code=code, approval_required=False, review_required=False)


def is_handler(actor: Principal, case: Case) -> bool:
    return case.claimed_by == actor.subject


# --------------------------------------------------------------------------
# opening and routing
# --------------------------------------------------------------------------


class CaseNotOpenedYet(RuntimeError):
    """A follow-up (withdrawn, rated, …) arrived before its petition's case was
    opened: several consumers share dispatch.petitions, so order is not kept.
    Raising retries it after the submission has been handled."""

    def __init__(self, petition_id: str):
        super().__init__(f"no case yet for petition {petition_id}; retried after it opens")


def open_case(session: Session, snapshot: Snapshot, petition: dict, now: datetime) -> Case | None:
    """One case per petition: route the place to the deepest grid of the petition's
    network, or to the county's catch-all queue; offer it or wait for approval."""
    if session.execute(CASE_OF_PETITION, {"petition_id": petition["petition_id"]}).first():
        return None  # the same petition again (a replay under a new event id): one case
    lon, lat = petition["place"]["lon"], petition["place"]["lat"]
    grid = snapshot.grid_at(petition["network"], lon, lat)
    codes = snapshot.divisions_of(grid, lon, lat)
    settings = community_settings(session, codes.get("community"))
    case = Case(
        id=uuid7(now), petition_id=petition["petition_id"], reporter_id=petition["reporter_id"],
        anonymous=petition["anonymous"],
        category=petition["category"], network=petition["network"], channel=petition["channel"],
        lon=lon, lat=lat, grid_id=grid.id if grid else None, community=codes.get("community"),
        street=codes.get("street"), county=codes.get("county"), catch_all=grid is None,
        level="grid" if grid else "county", rung="grid_worker" if grid else "county_admin",
        claim_minutes=petition["claim_minutes"], handle_hours=petition["handle_hours"],
        handle_minutes=petition.get("handle_minutes"),
        working_hours=petition["working_hours"], review_required=bool(settings.review_required),
        opened_at=now, state="routed", warned=False, step_missed=False, ever_overdue=False,
    )
    session.add(case)
    needs_approval = bool(grid and settings.approval_required and not petition["closed_on_spot"])
    approvers = dispatchers(session, case) if needs_approval else []
    record(session, CASE_OPENED, case, now, category=case.category, catch_all=case.catch_all,
           needs_approval=needs_approval, approvers=approvers)
    if petition["closed_on_spot"]:
        # 随手记, 发现即办: the patrolling grid worker already handled it.
        case.claimed_by = petition.get("submitted_by")
        case.claimed_at = case.resolved_at = case.closed_at = now
        case.outcome, case.result = "on_spot", "closed on the spot"
        move(session, case, CLOSED, action="close_on_spot", by=case.claimed_by, now=now,
             reason="handled on the spot during patrol")
        record(session, CASE_CLOSED, case, now, outcome="on_spot", rating=None, community=case.community)
    elif needs_approval:
        move(session, case, AWAITING_APPROVAL, action="route", by=None, now=now,
             reason=f"community {case.community} approves before offering")
        start_step(session, case, "approve", now, claim_hours(case))
        if not approvers:
            alert_unattended(session, case, now, "no_approver")
    else:
        offer(session, case, case.rung, now, by=None, reason=(
            f"routed to grid {case.grid_id}" if grid else "no grid of the network covers the place: catch-all queue"))
    return case


def dispatchers(session: Session, case: Case) -> list[str]:
    """Who approves and re-dispatches: the community's admins (county admins for the catch-all)."""
    admins = people_on_rung(session, "community_admin", case.grid_id, divisions(case)) if case.community else []
    return admins or people_on_rung(session, "county_admin", None, {})


def first_rung_with_people(session: Session, case: Case, start: str) -> tuple[str, list[str]]:
    rungs = domain.RUNGS[domain.RUNGS.index(start):] if case.grid_id else ("county_admin",)
    for rung in rungs:
        people = people_on_rung(session, rung, case.grid_id, divisions(case))
        if people:
            return rung, people
    return "county_admin", []  # nobody at all: it waits in the county queue, never lost


def set_offer(session: Session, case: Case, rung: str, people: list[str], now: datetime) -> None:
    if case.first_offered_at is not None:  # offered before: those offers end here
        session.execute(delete(Offer).where(Offer.case_id == case.id))
    session.add_all(Offer(case_id=case.id, user_id=user) for user in people)
    case.rung, case.level = rung, domain.LEVEL_OF_RUNG[rung]
    if people:
        case.unattended_since = None
    start_step(session, case, "claim", now, claim_hours(case))
    if case.first_offered_at is None:
        case.first_offered_at, case.first_claim_due = now, case.step_due_at


def offer(session: Session, case: Case, start: str, now: datetime, *, by: str | None,
          reason: str | None = None) -> None:
    rung, people = first_rung_with_people(session, case, start)
    set_offer(session, case, rung, people, now)
    move(session, case, OFFERED, action="offer", by=by, now=now,
         reason=f"{reason + ': ' if reason else ''}offered to the {rung.replace('_', ' ')}s ({len(people)})")
    record(session, CASE_ASSIGNED, case, now, offered_to=people, claim_due=case.step_due_at, by=by)
    if not people:
        alert_unattended(session, case, now, "nobody_to_offer")


# --------------------------------------------------------------------------
# commands from staff (HTTP)
# --------------------------------------------------------------------------


def approve(session: Session, snapshot: Snapshot, case: Case, actor: Principal, now: datetime,
            grid_id: int | None = None, reason: str | None = None) -> None:
    """审批分配: the community's admin lets the case be offered (optionally to another grid)."""
    require(domain.in_scope(actor, place(snapshot, case, session), domain.DISPATCHERS),
            "only the community's admin (or a county admin) approves its cases")
    domain.check("approve", case.state)
    if grid_id is not None and grid_id != case.grid_id:
        grid = snapshot.grids.get(grid_id)
        if grid is None or grid.network != case.network:
            raise Refused(f"grid {grid_id} is not a current grid of the {case.network} network")
        require(domain.may_send_to(actor, domain.Place(snapshot.chain(grid.id), snapshot.grid_divisions(grid.id))),
                f"grid {grid_id} is outside your scope: you may send a case only to a grid of your own area")
        codes = snapshot.divisions_of(grid, case.lon, case.lat)
        case.grid_id, case.catch_all = grid.id, False
        case.community, case.street, case.county = codes.get("community"), codes.get("street"), codes.get("county")
    offer(session, case, "grid_worker" if case.grid_id else "county_admin", now, by=actor.subject,
          reason=reason or "approved")


def claim(session: Session, snapshot: Snapshot, case_id: str, actor: Principal, now: datetime) -> Case:
    """秒认领: the first claim wins. The conditional UPDATE (state still 'offered')
    makes concurrent claims yield exactly one winner; the rest get a 409."""
    case = load(session, case_id, lock=False)
    me = actor.subject
    mine = me in offered_to(session, case)
    head = case.grid_id is not None and (
        me in people_on_rung(session, "grid_head", case.grid_id, {})
        or domain.in_scope(actor, place(snapshot, case, session), ("grid_head",)))
    if not (mine or head):
        if case.state != OFFERED and may_see(session, snapshot, case, actor):
            CLAIMS.labels("conflict").inc()
            domain.check("claim", case.state)  # in my grid but no longer claimable: say why
        CLAIMS.labels("forbidden").inc()
        raise NotPermitted("this case is not offered to you: it is outside your grid")
    try:
        domain.check("claim", case.state)
    except Refused:
        CLAIMS.labels("conflict").inc()
        raise
    working = workdays.for_case(session, case)
    handle_due = due_after(now, handle_hours(case), working)
    won = session.execute(
        update(Case).where(Case.id == case.id, Case.state == OFFERED)
        .values(state=CLAIMED, claimed_by=me, claimed_at=now, step="handle", step_started_at=now,
                step_due_at=handle_due, yellow_at=domain.warn_at(now, handle_due, working),
                warned=False, step_missed=False)
        .execution_options(synchronize_session=False)).rowcount
    if not won:
        CLAIMS.labels("conflict").inc()
        raise Refused("someone else claimed this case first", CLAIMED)
    session.refresh(case)
    session.add(Transition(case_id=case.id, at=now, by=me, action="claim", from_state=OFFERED,
                           to_state=CLAIMED, level=case.level, reason=None))
    seconds = (now - aware(case.first_offered_at or case.opened_at)).total_seconds()
    record(session, CASE_CLAIMED, case, now, by=me, claim_seconds=seconds, handle_due=handle_due)
    CLAIMS.labels("won").inc()
    return case


def note(session: Session, snapshot: Snapshot, case: Case, actor: Principal, now: datetime,
         text: str, photos: list[str]) -> Note:
    require(may_see(session, snapshot, case, actor), "this case is outside your scope")
    domain.check("note", case.state)
    entry = Note(case_id=case.id, by=actor.subject, at=now, text=text, photos=json.dumps(photos))
    session.add(entry)
    record(session, CASE_PROGRESSED, case, now, by=actor.subject, kind="photo" if photos and not text else "note",
           text=text, handle_due=case.step_due_at if case.step == "handle" else None)
    return entry


def request_extension(session: Session, case: Case, actor: Principal, now: datetime, hours: int,
                      reason: str) -> Extension:
    require(is_handler(actor, case), "only the case's handler may ask for more time")
    domain.check("request_extension", case.state)
    if pending_extension(session, case):
        raise Refused("an extension request is already waiting for a decision")
    extension = Extension(case_id=case.id, requested_by=actor.subject, requested_at=now, hours=hours,
                          reason=reason, decision="pending")
    session.add(extension)
    record(session, CASE_PROGRESSED, case, now, by=actor.subject, kind="extension_requested",
           text=reason, handle_due=case.step_due_at)
    return extension


def pending_extension(session: Session, case: Case) -> Extension | None:
    return session.execute(select(Extension).where(Extension.case_id == case.id,
                                                   Extension.decision == "pending")).scalar_one_or_none()


def decide_extension(session: Session, snapshot: Snapshot, case: Case, actor: Principal, now: datetime,
                     approved: bool, comment: str | None) -> Extension:
    """The level above the handler approves or refuses more time."""
    require(not is_handler(actor, case) and domain.in_scope(actor, place(snapshot, case, session), domain.ADMINS),
            "extensions are decided by an admin above the handler")
    domain.check("decide_extension", case.state)
    extension = pending_extension(session, case)
    if extension is None:
        raise Refused("no extension request is waiting for a decision")
    extension.decision = "approved" if approved else "refused"
    extension.decided_by, extension.decided_at, extension.comment = actor.subject, now, comment
    if approved:
        base = max(aware(case.step_due_at or now), now)
        working = workdays.for_case(session, case)
        case.step_due_at = due_after(base, extension.hours, working)
        case.yellow_at = domain.warn_at(case.step_started_at, case.step_due_at, working)
        case.step_missed, case.warned = False, False
    record(session, CASE_PROGRESSED, case, now, by=actor.subject,
           kind="extension_approved" if approved else "extension_refused", text=comment,
           handle_due=case.step_due_at)
    return extension


def return_case(session: Session, case: Case, actor: Principal, now: datetime, reason: str) -> None:
    """Back to the dispatcher with a reason (not mine, wrong grid, needs a department…)."""
    require(is_handler(actor, case), "only the case's handler may return it")
    domain.check("return", case.state)
    move(session, case, RETURNED, action="return", by=actor.subject, now=now, reason=reason)
    case.claimed_by = None
    session.execute(delete(Offer).where(Offer.case_id == case.id))
    start_step(session, case, "approve", now, claim_hours(case))
    record(session, CASE_PROGRESSED, case, now, by=actor.subject, kind="returned", text=reason, handle_due=None)
    if not dispatchers(session, case):
        alert_unattended(session, case, now, "no_approver")


def resolve(session: Session, case: Case, actor: Principal, now: datetime, result: str) -> None:
    require(is_handler(actor, case), "only the case's handler may resolve it")
    domain.check("resolve", case.state)
    case.result = result
    if community_settings(session, case.community).review_required or case.review_required:
        move(session, case, REVIEWING, action="resolve", by=actor.subject, now=now,
             reason="the community reviews before the resident is told")
        start_step(session, case, "review", now, None)
        return
    finish(session, case, actor.subject, now)


def finish(session: Session, case: Case, by: str, now: datetime) -> None:
    move(session, case, RESOLVED, action="resolve", by=by, now=now, reason=case.result)
    case.resolved_at = now
    start_step(session, case, None, now)
    record(session, CASE_RESOLVED, case, now, by=case.claimed_by or by, result=case.result or "")


def review(session: Session, snapshot: Snapshot, case: Case, actor: Principal, now: datetime,
           approved: bool, comment: str | None) -> None:
    require(domain.in_scope(actor, place(snapshot, case, session), ("community_admin", "county_admin")),
            "only the community's admin reviews its cases")
    domain.check("review", case.state)
    if approved:
        finish(session, case, actor.subject, now)
        return
    move(session, case, CLAIMED, action="review", by=actor.subject, now=now,
         reason=comment or "review refused: more work needed")
    start_step(session, case, "handle", now, handle_hours(case))


# --------------------------------------------------------------------------
# 吹哨报到, 会商, 赋分
# --------------------------------------------------------------------------


def whistle(session: Session, snapshot: Snapshot, case: Case, actor: Principal, now: datetime,
            departments: list[str], report_in_hours: int, reason: str | None) -> Whistle:
    require(domain.in_scope(actor, place(snapshot, case, session), domain.ADMINS),
            "only the street's or community's admins blow the whistle on its cases")
    domain.check("whistle", case.state)
    due = due_after(now, report_in_hours, workdays.for_case(session, case))
    blown = Whistle(id=str(uuid.uuid4()), case_id=case.id, by=actor.subject, at=now, report_in_due=due,
                    reason=reason)
    session.add(blown)
    session.flush()
    session.add_all(Summons(whistle_id=blown.id, department=code, case_id=case.id, report_in_due=due,
                            missed=False) for code in departments)
    session.add(Transition(case_id=case.id, at=now, by=actor.subject, action="whistle",
                           from_state=case.state, to_state=case.state, level=case.level,
                           reason=f"whistled {', '.join(departments)}" + (f": {reason}" if reason else "")))
    record(session, CASE_WHISTLED, case, now, whistle_id=blown.id, departments=departments,
           report_in_due=due, by=actor.subject)
    return blown


def summons_for(session: Session, case: Case, whistle_id: str, actor: Principal,
                department: str | None) -> Summons:
    """The summons of the actor's department on this whistle."""
    rows = session.execute(select(Summons).where(Summons.whistle_id == whistle_id, Summons.case_id == case.id)
                           .with_for_update()).scalars().all()
    if not rows:
        raise LookupError(whistle_id)
    mine = [s for s in rows if s.department in domain.departments_of(actor)
            and (department is None or s.department == department)]
    require(bool(mine), "only an officer of a whistled department may answer this whistle")
    if len(mine) > 1:
        raise Refused("you serve several whistled departments: name the department")
    return mine[0]


def report_in(session: Session, case: Case, whistle_id: str, actor: Principal, now: datetime,
              department: str | None) -> Summons:
    summons = summons_for(session, case, whistle_id, actor, department)
    domain.check("report_in", case.state)
    if summons.reported_in_at is not None:
        raise Refused(f"{summons.department} already reported in")
    summons.reported_in_at, summons.reported_by = now, actor.subject
    summons.late = now > aware(summons.report_in_due)
    record(session, CASE_REPORTED_IN, case, now, whistle_id=whistle_id, department=summons.department,
           by=actor.subject, late=summons.late)
    return summons


def department_handling(session: Session, case: Case, whistle_id: str, actor: Principal, now: datetime,
                        text: str, department: str | None) -> Summons:
    summons = summons_for(session, case, whistle_id, actor, department)
    domain.check("department_handling", case.state)
    if summons.reported_in_at is None:
        raise Refused(f"{summons.department} must report in before recording its handling")
    summons.handling, summons.handled_at, summons.handled_by = text, now, actor.subject
    return summons


def consult(session: Session, snapshot: Snapshot, case: Case, actor: Principal, now: datetime,
            held_on, attendees: list[str], decisions: list[dict]) -> Consultation:
    require(domain.in_scope(actor, place(snapshot, case, session), domain.ADMINS),
            "only the street's or community's admins record consultations on its cases")
    domain.check("consult", case.state)
    meeting = Consultation(case_id=case.id, held_on=held_on, attendees=json.dumps(attendees, ensure_ascii=False),
                           decisions=json.dumps(decisions, ensure_ascii=False), recorded_by=actor.subject,
                           recorded_at=now)
    session.add(meeting)
    return meeting


def score(session: Session, snapshot: Snapshot, case: Case, whistle_id: str, actor: Principal, now: datetime,
          department: str, value: int) -> Summons:
    """吹哨满意度赋分: the grassroots score a department's response after the case is done."""
    require(domain.in_scope(actor, place(snapshot, case, session), domain.ADMINS),
            "only the street's or community's admins score departments on its cases")
    summons = session.execute(select(Summons).where(Summons.whistle_id == whistle_id, Summons.case_id == case.id,
                                                    Summons.department == department).with_for_update()
                              ).scalar_one_or_none()
    if summons is None:
        raise LookupError(whistle_id)
    domain.check("score", case.state)
    if summons.score is not None:
        raise Refused(f"{department} was already scored on this whistle")
    summons.score, summons.scored_by, summons.scored_at = value, actor.subject, now
    return summons


def may_see(session: Session, snapshot: Snapshot, case: Case, actor: Principal) -> bool:
    return domain.may_see(actor, place(snapshot, case, session),
                          offered_to_me=actor.subject in offered_to(session, case),
                          handled_by_me=is_handler(actor, case))


# --------------------------------------------------------------------------
# the resident's side (intake events)
# --------------------------------------------------------------------------


def by_petition(session: Session, petition_id: str) -> Case | None:
    return session.execute(select(Case).where(Case.petition_id == petition_id).with_for_update()
                           ).scalar_one_or_none()


def close(session: Session, case: Case, outcome: str, now: datetime, *, by: str | None,
          reason: str | None = None, rating: int | None = None) -> None:
    move(session, case, CLOSED, action=outcome, by=by, now=now, reason=reason)
    case.outcome, case.closed_at = outcome, now
    if rating is not None:
        case.rating = rating
    start_step(session, case, None, now)
    record(session, CASE_CLOSED, case, now, outcome=outcome, rating=rating, community=case.community)


def ignore_refused(action: str, case: Case) -> bool:
    """Events report facts we cannot refuse: a late one that no longer applies is logged, not retried."""
    try:
        domain.check(action, case.state)
        return False
    except Refused as exc:
        log.warning("ignoring %s on case %s: %s", action, case.id, exc.reason)
        return True


def withdraw(session: Session, petition: dict, now: datetime) -> None:
    case = by_petition(session, petition["petition_id"])
    if case is None:
        raise CaseNotOpenedYet(petition["petition_id"])
    if ignore_refused("withdraw", case):
        return
    close(session, case, "withdrawn", now, by=petition["reporter_id"], reason="withdrawn by the resident")


def merge(session: Session, petition: dict, now: datetime) -> None:
    case = by_petition(session, petition["petition_id"])
    if case is None:
        raise CaseNotOpenedYet(petition["petition_id"])
    if ignore_refused("merge", case):
        return
    close(session, case, "merged", now, by=petition["by"],
          reason=f"merged into petition {petition['into_petition_id']}")


def rate(session: Session, petition: dict, now: datetime) -> None:
    case = by_petition(session, petition["petition_id"])
    if case is None:
        raise CaseNotOpenedYet(petition["petition_id"])
    if ignore_refused("rate", case):
        return
    close(session, case, "rated", now, by=petition["reporter_id"], rating=petition["rating"],
          reason=f"rated {petition['rating']}/5")


def reopen(session: Session, petition: dict, now: datetime) -> None:
    """不满意重办: rework goes back to the same handler, with a fresh handling clock."""
    case = by_petition(session, petition["petition_id"])
    if case is None:
        raise CaseNotOpenedYet(petition["petition_id"])
    if ignore_refused("reopen", case) or case.outcome in ("withdrawn", "merged", "on_spot"):
        return
    move(session, case, REOPENED, action="reopen", by=petition["reporter_id"], now=now, reason=petition["reason"])
    case.outcome = case.closed_at = case.resolved_at = None
    start_step(session, case, "handle", now, handle_hours(case))
    record(session, CASE_REOPENED, case, now, reason=petition["reason"])


# --------------------------------------------------------------------------
# the sweep: reminders, escalation up the ladder, rating timeouts
# --------------------------------------------------------------------------

BATCH = 500


def sweep(session: Session, now: datetime, *, rating_days: int = DEFAULT_RATING_DAYS) -> dict[str, int]:
    """Everything time makes happen, for cases due by ``now``. Rows are taken with
    SKIP LOCKED so several workers sweeping at once never act twice on a case."""
    done = {"approaching": 0, "missed": 0, "escalated": 0, "report_in_missed": 0, "rating_timeout": 0}

    def due(query):
        return session.execute(query.with_for_update(skip_locked=True).limit(BATCH)).scalars().all()

    for case in due(select(Case).where(Case.yellow_at <= now, Case.step_due_at > now, Case.warned.is_(False))):
        case.warned = True
        holders = [case.claimed_by] if case.step == "handle" and case.claimed_by else offered_to(session, case)
        if case.step == "approve":
            holders = dispatchers(session, case)
        record(session, DEADLINE_APPROACHING, case, now, step=case.step, due=case.step_due_at,
               department=None, notify=holders)
        done["approaching"] += 1

    for case in due(select(Case).where(Case.step_due_at <= now, Case.step_missed.is_(False))):
        missed_deadline(session, case, now, done)

    for summons in due(select(Summons).where(Summons.report_in_due <= now, Summons.reported_in_at.is_(None),
                                             Summons.missed.is_(False))):
        summons.missed = True
        case = session.get(Case, summons.case_id)
        blown = session.get(Whistle, summons.whistle_id)
        officers = people_with_grant(session, "dept_officer", f"department:{summons.department}")
        record(session, DEADLINE_MISSED, case, now, step="report_in", due=summons.report_in_due,
               department=summons.department, notify=sorted({*officers, blown.by}))
        DEADLINES_MISSED.labels("report_in").inc()
        done["report_in_missed"] += 1

    cutoff = now - timedelta(days=rating_days)
    for case in due(select(Case).where(Case.state == RESOLVED, Case.resolved_at <= cutoff)):
        close(session, case, "rating_timeout", now, by=None, reason=f"no rating within {rating_days} days")
        done["rating_timeout"] += 1

    # Someone who left still holds or is offered a case: what identity.user.disabled could not
    # catch (a claim racing the disable, rework or a refused review coming back to them).
    done |= release(session, disabled_people(), now, sweeping=True)
    return done


def people_with_grant(session: Session, role: str, scope: str) -> list[str]:
    from .projection import granted

    return granted(session, role, scope)


def missed_deadline(session: Session, case: Case, now: datetime, done: dict[str, int]) -> None:
    """Red light. Unclaimed: re-offer one rung up (grid head, then community, street,
    county admins). Being handled: the supervisors one level up are told."""
    case.step_missed, case.ever_overdue = True, True
    step, due_at = case.step, case.step_due_at
    DEADLINES_MISSED.labels(step or "none").inc()
    done["missed"] += 1
    if case.state == OFFERED and case.rung != "county_admin":
        from_level, rung, people = climb_offer(session, case, now)
        session.add(Transition(case_id=case.id, at=now, by=None, action="escalate", from_state=OFFERED,
                               to_state=OFFERED, level=case.level,
                               reason=f"unclaimed past the claim deadline: offered to the {rung.replace('_', ' ')}s"))
        record(session, DEADLINE_MISSED, case, now, step="claim", due=due_at, department=None, notify=people)
        record(session, CASE_ESCALATED, case, now, from_level=from_level, reason="claim_deadline",
               division_code=division_at(case, case.level), offered_to=people, claim_due=case.step_due_at)
        ESCALATIONS.labels("claim_deadline", case.level).inc()
        done["escalated"] += 1
        if not people:
            alert_unattended(session, case, now, "nobody_to_offer")
        return
    if case.state in (CLAIMED, REOPENED) and step == "handle":
        from_level, supervisors = climb_level(session, case)
        session.add(Transition(case_id=case.id, at=now, by=None, action="escalate", from_state=case.state,
                               to_state=case.state, level=case.level,
                               reason=f"handling deadline missed: supervised at {case.level} level"))
        record(session, DEADLINE_MISSED, case, now, step="handle", due=due_at, department=None,
               notify=sorted({*supervisors, *([case.claimed_by] if case.claimed_by else [])}))
        record(session, CASE_ESCALATED, case, now, from_level=from_level, reason="handle_deadline",
               division_code=division_at(case, case.level), offered_to=[], claim_due=due_at)
        ESCALATIONS.labels("handle_deadline", case.level).inc()
        done["escalated"] += 1
        return
    # awaiting approval / returned (the dispatcher is late), or the top of the ladder
    notify = dispatchers(session, case) if case.state in (AWAITING_APPROVAL, RETURNED) else offered_to(session, case)
    if case.state in (AWAITING_APPROVAL, RETURNED) and case.street:
        notify = sorted({*notify, *people_on_rung(session, "street_admin", case.grid_id, divisions(case))})
    record(session, DEADLINE_MISSED, case, now, step=step if step in ("approve", "claim", "review") else "claim",
           due=due_at, department=None, notify=notify)


def climb_offer(session: Session, case: Case, now: datetime, *, by_level: bool = False) -> tuple[str, str, list[str]]:
    """An unclaimed case up the ladder, offered from the next rung (claim deadline) or the
    first rung of the next level (督办) with people on it, with a fresh claim clock; at the
    top it stays where it is. Answers (the level it left, the rung, the people offered)."""
    from_level = case.level
    if case.rung == "county_admin":
        return from_level, case.rung, offered_to(session, case)
    start = RUNG_OF_LEVEL[domain.next_level(case.level)] if by_level \
        else domain.RUNGS[domain.RUNGS.index(case.rung) + 1]
    rung, people = first_rung_with_people(session, case, start)
    set_offer(session, case, rung, people, now)
    return from_level, rung, people


def climb_level(session: Session, case: Case) -> tuple[str, list[str]]:
    """A case someone holds goes one level up (handling deadline, 督办): answers the level it
    left and the supervisors at the new one."""
    from_level = case.level
    case.level = domain.next_level(case.level)
    return from_level, supervisors_at(session, case, case.level)


RUNG_OF_LEVEL = {"grid": "grid_head", "community": "community_admin", "street": "street_admin",
                 "county": "county_admin"}


def division_at(case: Case, level: str) -> str | None:
    return {"community": case.community, "street": case.street, "county": case.county}.get(level)


def supervisors_at(session: Session, case: Case, level: str) -> list[str]:
    return people_on_rung(session, RUNG_OF_LEVEL[level], case.grid_id, divisions(case))



# --------------------------------------------------------------------------
# stuck cases: offboarding, reassignment, 督办, nobody to take it
# --------------------------------------------------------------------------


def disabled_people():
    """The accounts identity disabled (a subquery)."""
    return select(AccountStatus.user_id).where(AccountStatus.disabled.is_(True))


def is_disabled(session: Session, user_id: str) -> bool:
    return bool(session.scalar(select(AccountStatus.disabled).where(AccountStatus.user_id == user_id)))


def note_account(session: Session, user_id: str, *, disabled: bool, at: datetime) -> bool:
    """Keep an account's latest status (identity.user.disabled / enabled). False when a later
    change is already known (events of two moments arrived out of order)."""
    row = session.get(AccountStatus, user_id, with_for_update=True)
    if row is not None and aware(row.changed_at) > aware(at):
        log.warning("ignoring an older account change", extra={"user_id": user_id})
        return False
    if row is None:
        row = AccountStatus(user_id=user_id)
        session.add(row)
    row.disabled, row.changed_at = disabled, at
    session.flush()  # the rung lookups below must already leave them out
    session.info.pop("grid_staff", None)
    return True


def offboard(session: Session, user_id: str, at: datetime, now: datetime) -> dict[str, int]:
    """Someone left (identity.user.disabled): they stand on no rung any more, their offers are
    withdrawn and every case they held goes back to its grid head. Whatever order this, the
    role revocations and the end of their staffing arrive in, the outcome is the same; again
    (a replay) it changes nothing."""
    if not note_account(session, user_id, disabled=True, at=at):
        return {}
    done = release(session, [user_id], now)
    was_dispatcher = session.execute(select(StaffGrant.grant_id).where(
        StaffGrant.user_id == user_id, StaffGrant.role.in_(("community_admin", "county_admin")))).first()
    if was_dispatcher:  # cases waiting for an approval they might have been the only one to give
        for case in session.execute(select(Case).where(
                Case.state.in_((AWAITING_APPROVAL, RETURNED)), Case.unattended_since.is_(None))
                .order_by(Case.id).with_for_update()).scalars():
            if not dispatchers(session, case):
                alert_unattended(session, case, now, "no_approver")
    return done


def account_enabled(session: Session, user_id: str, at: datetime, now: datetime) -> None:
    """identity.user.enabled: they may stand on rungs again, by new grants and staffing."""
    if note_account(session, user_id, disabled=False, at=at):
        attend_unattended(session, now)


def release(session: Session, people, now: datetime, *, sweeping: bool = False) -> dict[str, int]:
    """Give back what ``people`` (ids, or a subquery of them) hold or are offered. The sweep
    takes rows with SKIP LOCKED, a batch at a time; the event handler waits for them."""
    def take(query):
        query = query.order_by(Case.id)
        if sweeping:
            return session.execute(query.with_for_update(skip_locked=True).limit(BATCH)).scalars().all()
        return session.execute(query.with_for_update()).scalars().all()

    held = take(select(Case).where(Case.state.in_(domain.HANDLING), Case.claimed_by.in_(people)))
    for case in held:
        hand_back(session, case, now)
    offered = take(select(Case).where(Case.state == OFFERED, Case.id.in_(
        select(Offer.case_id).where(Offer.user_id.in_(people)))))
    for case in offered:
        withdraw_offers(session, case, now)
    return {"handed_back": len(held), "offers_withdrawn": len(offered)}


def hand_back(session: Session, case: Case, now: datetime) -> None:
    """The handler left: the case is offered to its grid head (the next rung up when the head
    is gone too; the county admins for the catch-all) to claim or reassign, with a fresh
    claim clock. Their pending extension request goes with them."""
    handler = case.claimed_by
    rung, people = first_rung_with_people(session, case, "grid_head" if case.grid_id else "county_admin")
    session.execute(delete(Offer).where(Offer.case_id == case.id))
    for extension in session.execute(select(Extension).where(Extension.case_id == case.id,
                                                             Extension.decision == "pending")).scalars():
        extension.decision, extension.decided_at, extension.comment = "withdrawn", now, "the handler left"
    case.claimed_by = None
    set_offer(session, case, rung, people, now)
    move(session, case, OFFERED, action="hand_back", by=None, now=now,
         reason=f"the handler left (account disabled): offered to the {rung.replace('_', ' ')}s "
                f"({len(people)}) to claim or reassign")
    record(session, CASE_HANDED_BACK, case, now, handler=handler, reason="handler_left", offered_to=people,
           claim_due=case.step_due_at)
    HANDED_BACK.labels("handler_left").inc()
    if not people:
        alert_unattended(session, case, now, "nobody_to_offer")


def withdraw_offers(session: Session, case: Case, now: datetime) -> None:
    """Offers to people who left are withdrawn. When nobody is left to claim the case it does
    not wait silently: it goes to the people now on its rung, else up the ladder (the grid head
    after the workers)."""
    gone = session.execute(select(Offer.user_id).where(Offer.case_id == case.id,
                                                       Offer.user_id.in_(disabled_people()))).scalars().all()
    session.execute(delete(Offer).where(Offer.case_id == case.id, Offer.user_id.in_(gone)))
    if offered_to(session, case):
        session.add(Transition(case_id=case.id, at=now, by=None, action="withdraw_offers", from_state=OFFERED,
                               to_state=OFFERED, level=case.level,
                               reason=f"offers to {len(gone)} people who left withdrawn"))
        return
    rung, people = first_rung_with_people(session, case, case.rung if case.grid_id else "county_admin")
    set_offer(session, case, rung, people, now)
    move(session, case, OFFERED, action="hand_back", by=None, now=now,
         reason=f"everyone it was offered to left: offered to the {rung.replace('_', ' ')}s ({len(people)})")
    record(session, CASE_HANDED_BACK, case, now, handler=None, reason="offers_withdrawn", offered_to=people,
           claim_due=case.step_due_at)
    HANDED_BACK.labels("offers_withdrawn").inc()
    if not people:
        alert_unattended(session, case, now, "nobody_to_offer")


def alert_unattended(session: Session, case: Case, now: datetime, reason: str) -> None:
    """Nobody can take the case: instead of a silent wait, a metric operators alert on and a
    critical notice to the county admins (to the sysadmins when there is no county admin,
    which is usually why). Attended to as soon as someone is staffed or granted."""
    case.unattended_since = case.unattended_since or now
    admins = people_on_rung(session, "county_admin", None, {})
    notify = admins or granted(session, "sysadmin", "county")
    what = "nobody to offer it to" if reason == "nobody_to_offer" else "nobody to approve it"
    session.add(Transition(case_id=case.id, at=now, by=None, action="alert", from_state=case.state,
                           to_state=case.state, level=case.level,
                           reason=f"{what}: alerted the {'county admins' if admins else 'sysadmins'} ({len(notify)})"))
    record(session, CASE_UNATTENDED, case, now, reason=reason, catch_all=bool(case.catch_all), notify=notify)
    UNATTENDED.labels("catch_all" if case.catch_all else "grid", reason).inc()
    log.warning("case unattended", extra={"case_id": case.id, "reason": reason})


def attend_unattended(session: Session, now: datetime) -> int:
    """Someone was staffed, granted or enabled: cases nobody could take are offered now (or,
    waiting for an approval, no longer flagged once someone can give it)."""
    waiting = session.execute(select(Case).where(Case.unattended_since.is_not(None)).order_by(Case.id)
                              .with_for_update(skip_locked=True).limit(BATCH)).scalars().all()
    offered = 0
    for case in waiting:
        if case.state in (AWAITING_APPROVAL, RETURNED):
            if dispatchers(session, case):
                case.unattended_since = None
            continue
        if case.state != OFFERED or offered_to(session, case):
            case.unattended_since = None
            continue
        rung, people = first_rung_with_people(session, case, "grid_worker" if case.grid_id else "county_admin")
        if people:
            set_offer(session, case, rung, people, now)
            move(session, case, OFFERED, action="offer", by=None, now=now,
                 reason=f"someone to take it at last: offered to the {rung.replace('_', ' ')}s ({len(people)})")
            record(session, CASE_ASSIGNED, case, now, offered_to=people, claim_due=case.step_due_at, by=None)
            offered += 1
    return offered


# --- supervisors: reassign and 督办 -------------------------------------------


def grid_place(snapshot: Snapshot, grid_id: int) -> domain.Place:
    """A grid as scope checks see it: it and its ancestors, and the divisions it lies in."""
    chain = snapshot.chain(grid_id)
    start = next((snapshot.division_by_code.get(info.division_code) for info in
                  (snapshot.grids.get(g) for g in chain) if info and info.division_code), None)
    codes: list[str] = []
    while start is not None and start.code not in codes:
        codes.append(start.code)
        start = snapshot.divisions.get(start.parent_id) if start.parent_id is not None else None
    return domain.Place(chain, tuple(codes))


def supervises(session: Session, actor: Principal, chain: tuple[int, ...], where: domain.Place) -> bool:
    """The grid head of the grid or above (grant or staffing), or an admin of its area."""
    return domain.in_scope(actor, where, domain.SUPERVISORS) or any(
        actor.subject in people_on_rung(session, "grid_head", grid_id, {}) for grid_id in chain)


def may_supervise(session: Session, snapshot: Snapshot, case: Case, actor: Principal) -> bool:
    return supervises(session, actor, snapshot.chain(case.grid_id), place(snapshot, case, session))


def staffed_grids(session: Session, user_id: str) -> list[int]:
    """Grids the person works on now as a grid worker or grid head (not disabled)."""
    return sorted(set(session.execute(select(GridStaff.grid_id).where(
        GridStaff.user_id == user_id, GridStaff.active.is_(True),
        GridStaff.role.in_(("grid_worker", "grid_head")), enabled(GridStaff.user_id))).scalars()))


def reassign(session: Session, snapshot: Snapshot, case: Case, actor: Principal, now: datetime,
             to: str, reason: str) -> None:
    """A supervisor moves the case to another worker in their scope: a held case keeps its
    handling clock (reassigning buys no time; extensions do), an unclaimed one starts it."""
    require(may_supervise(session, snapshot, case, actor),
            "only the case's supervisors (its grid head or above, the admins of its area) reassign it")
    domain.check("reassign", case.state)
    if to == case.claimed_by:
        raise Refused("that worker already handles this case", case.state)
    grids = staffed_grids(session, to)
    if not grids:
        raise domain.Invalid("to", "the account is disabled" if is_disabled(session, to)
                             else "not a grid worker or grid head on any current grid")
    require(any(supervises(session, actor, snapshot.chain(g), grid_place(snapshot, g)) for g in grids),
            "the new handler works on no grid you supervise")
    handler = case.claimed_by
    handling = case.state in domain.HANDLING
    if not handling:
        start_step(session, case, "handle", now, handle_hours(case))
        case.claimed_at = now
    for extension in session.execute(select(Extension).where(Extension.case_id == case.id,
                                                             Extension.decision == "pending")).scalars():
        extension.decision, extension.decided_by, extension.decided_at = "withdrawn", actor.subject, now
        extension.comment = "the case was reassigned"
    move(session, case, case.state if handling else CLAIMED, action="reassign", by=actor.subject, now=now,
         reason=reason)
    case.claimed_by, case.unattended_since = to, None
    record(session, CASE_REASSIGNED, case, now, by=actor.subject, from_handler=handler, to_handler=to,
           reason=reason, handle_due=case.step_due_at)


def supervise(session: Session, snapshot: Snapshot, case: Case, actor: Principal, now: datetime,
              hours: int, reason: str) -> None:
    """督办: a supervisor flags the case. It climbs one rung of the ladder as a missed deadline
    would (an unclaimed case is offered one rung up; a held one goes one level up), its step
    gets the supervisor's deadline, and whoever must act hears of it. Missing that deadline
    climbs it again, through the sweep."""
    require(may_supervise(session, snapshot, case, actor) and not is_handler(actor, case),
            "only a supervisor of the case other than its handler flags it for supervision")
    domain.check("supervise", case.state)
    if case.state == OFFERED:
        from_level, _, offered = climb_offer(session, case, now, by_level=True)
        start_step(session, case, "claim", now, hours)
        notify: list[str] = []
    else:
        from_level, supervisors = climb_level(session, case)
        handling = case.state in domain.HANDLING
        start_step(session, case, "handle" if handling else "approve", now, hours)
        acting = [case.claimed_by] if handling and case.claimed_by else dispatchers(session, case)
        notify, offered = sorted({*acting, *supervisors}), []
    case.supervised_at, case.supervised_by = now, actor.subject
    session.add(Transition(case_id=case.id, at=now, by=actor.subject, action="supervise", from_state=case.state,
                           to_state=case.state, level=case.level,
                           reason=f"flagged for supervision at {case.level} level: {reason}"))
    record(session, CASE_ESCALATED, case, now, from_level=from_level, reason="manual",
           division_code=division_at(case, case.level), offered_to=offered, claim_due=case.step_due_at,
           by=actor.subject, text=reason, due=case.step_due_at, notify=notify)
    ESCALATIONS.labels("manual", case.level).inc()
    if case.state == OFFERED and not offered:
        alert_unattended(session, case, now, "nobody_to_offer")


__all__ = ["sweep", "open_case", "claim", "approve", "CLOSED", "REVIEWING", "Refused", "NotPermitted"]
