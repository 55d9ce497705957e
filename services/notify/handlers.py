"""What notify listens to.

``notify.cases``: every event a rule in :mod:`notify.rules` names (the
opening, the claim, a reassignment and a hand-back also feed the case
projection: each petition's case and its handler). ``notify.people``:
identity's role grants, to know each department's officers. ``notify.codes``:
identity's one-time codes, texted at once (see :func:`text_code`).

A handler writes, in the inbox transaction, one notice per recipient and
one pending delivery per outside channel; the delivery loop sends them.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime

from sqlalchemy import Select, bindparam, delete, select, union_all
from sqlalchemy.orm import Session

from contracts.dispatch import CASE_CLAIMED, CASE_HANDED_BACK, CASE_OPENED, CASE_REASSIGNED
from contracts.identity import (
    CODE_ISSUED,
    CODE_PURPOSE,
    RECIPIENT_PURPOSE,
    ROLE_GRANTED,
    ROLE_REVOKED,
)
from gridkit.consumer import Event, Subscriptions
from gridkit.crypto import mask_phone

from . import rules, templates
from .tables import (
    CaseHandler,
    CodeText,
    Contact,
    Delivery,
    DepartmentOfficer,
    Notice,
    Preference,
    UserId,
    utcnow,
)

log = logging.getLogger(__name__)

subscriptions = Subscriptions("notify")
DEPARTMENT_SCOPE = "department:"


class LocalDirectory(rules.Directory):
    """The rules' directory, from notify's own projections."""

    def __init__(self, session: Session):
        self.session = session

    def officers_of(self, department: str) -> list[str]:
        return list(self.session.scalars(select(DepartmentOfficer.user_id)
                                         .where(DepartmentOfficer.department == department)
                                         .order_by(DepartmentOfficer.user_id)).unique())

    def handler_of_case(self, case_id: str) -> str | None:
        return self.session.scalar(select(CaseHandler.handler_id).where(CaseHandler.case_id == case_id))

    def handler_of_petition(self, petition_id: str) -> str | None:
        return self.session.scalar(select(CaseHandler.handler_id).where(CaseHandler.petition_id == petition_id)
                                   .limit(1))

    def case_of_petition(self, petition_id: str) -> str | None:
        return self.session.scalar(select(CaseHandler.case_id).where(CaseHandler.petition_id == petition_id)
                                   .limit(1))


def with_cases(data: dict, directory: rules.Directory) -> dict:
    """Intake's events name petitions only: add their cases, so that every notice names
    its case the same way (templates.render)."""
    if data.get("case_id") or not data.get("petition_id"):
        return data
    known = {"case_id": directory.case_of_petition(data["petition_id"])}
    if data.get("into_petition_id"):
        known["into_case_id"] = directory.case_of_petition(data["into_petition_id"])
    return data | {key: value for key, value in known.items() if value}


def preferences_of(row: Preference | None) -> rules.Preferences:
    if row is None:
        return rules.Preferences()
    return rules.Preferences(row.language, {**rules.DEFAULT_CHANNELS, **json.loads(row.channels)},
                             frozenset(json.loads(row.muted_kinds)))


def erased(row: Preference | None) -> bool:
    return row is not None and row.erased_at is not None


def reachable(contact: Contact | None) -> set[str]:
    if contact is None:
        return set()
    return {channel for channel, sealed in (("email", contact.email_sealed), ("sms", contact.phone_sealed))
            if sealed}


_SETTINGS_OF: dict[int, Select] = {}


def _settings_of(n: int) -> Select:
    """Both rows of ``n`` people in one statement: the people asked for (parameters p0 …
    p{n-1}, a UNION ALL, which SQLite takes as well as PostgreSQL) outer-joined to their
    preferences and contacts by primary key. Built once per n: building it cost more than
    running it."""
    statement = _SETTINGS_OF.get(n)
    if statement is None:
        asked = union_all(*(select(bindparam(f"p{i}", type_=UserId).label("user_id")) for i in range(n))) \
            .subquery("asked")
        statement = (select(asked.c.user_id, Preference, Contact).select_from(asked)
                     .outerjoin(Preference, Preference.user_id == asked.c.user_id)
                     .outerjoin(Contact, Contact.user_id == asked.c.user_id))
        if n <= 32:  # the usual audiences; a larger one is built for its event alone
            _SETTINGS_OF[n] = statement
    return statement


def people_settings(session: Session, people: set[str]) -> tuple[dict, dict]:
    """Preferences and contacts of these people, remembered for the transaction: a batch
    of events asks once per person (both change only through the API, in other
    transactions), without flushing the notices written so far."""
    prefs = session.info.setdefault("preferences", {})
    contacts = session.info.setdefault("contacts", {})
    missing = sorted(person for person in people if person not in prefs)
    if missing:
        prefs.update(dict.fromkeys(missing))
        contacts.update(dict.fromkeys(missing))
        for _, preference, contact in session.execute(
                _settings_of(len(missing)), {f"p{i}": person for i, person in enumerate(missing)},
                execution_options={"autoflush": False}):
            if preference is not None:
                prefs[preference.user_id] = preference
            if contact is not None:
                contacts[contact.user_id] = contact
    return prefs, contacts


def notify(session: Session, event: Event) -> None:
    directory = LocalDirectory(session)
    addressed = rules.address(event.type, event.data, directory)
    if not addressed:
        return
    config = session.info["notify_config"]  # put on every session by service.setup
    prefs, contacts = people_settings(session, {a.recipient_id for a in addressed})
    # An erased person hears nothing more (their cases go on without them).
    addressed = [a for a in addressed if not erased(prefs.get(a.recipient_id))]
    if not addressed:
        return
    data = with_cases(event.data, directory)
    notices, outside = [], []
    for item in addressed:
        preferences = preferences_of(prefs.get(item.recipient_id))
        title, body = templates.render(item.kind, preferences.language, data, tz=config.timezone)
        notice = Notice(recipient_id=item.recipient_id, kind=item.kind, critical=item.critical, title=title,
                        body=body, case_id=data.get("case_id"), petition_id=data.get("petition_id"),
                        event_id=event.id)
        notices.append(notice)
        outside += [(notice, channel) for channel in rules.channels_for(
            item.kind, preferences, reachable(contacts.get(item.recipient_id)), config.available_channels)]
    session.add_all(notices)
    if outside:
        session.flush()  # the notices' ids, for their deliveries
        session.add_all(Delivery(notice_id=notice.id, recipient_id=notice.recipient_id, kind=notice.kind,
                                 channel=channel, status="pending", attempts=0) for notice, channel in outside)
        session.info["deliveries_written"] = True  # wakes the delivery loop after commit
    # Written with the rest of the transaction and pushed to the live streams at commit
    # (see service.setup).
    session.info.setdefault("notices_written", []).extend(notices)


def on_case_event(session: Session, event: Event) -> None:
    if event.type in (CASE_OPENED.type, CASE_CLAIMED.type):
        remember_case(session, event.data, handler=event.data["by"] if event.type == CASE_CLAIMED.type else None)
    elif event.type == CASE_REASSIGNED.type:
        remember_case(session, event.data, handler=event.data["to_handler"])
    elif event.type == CASE_HANDED_BACK.type and event.data["handler"] is not None:
        remember_case(session, event.data, handler=None, released=True)  # nobody holds it now
    notify(session, event)


CASE_HANDLER = select(CaseHandler).where(CaseHandler.case_id == bindparam("case_id"))  # built once


def remember_case(session: Session, data: dict, *, handler: str | None, released: bool = False) -> None:
    # Remembered for the transaction and read without a flush: a batch's notices and cases go
    # in together at commit. (Flushing what the events before wrote, one event at a time, was
    # a third of the worker's time under load.) A case opened and claimed in one batch is
    # one row.
    known = session.info.setdefault("case_handlers", {})
    row = known.get(data["case_id"])
    if row is None:
        row = session.execute(CASE_HANDLER, {"case_id": data["case_id"]},
                              execution_options={"autoflush": False}).scalar_one_or_none()
        if row is None:
            row = CaseHandler(case_id=data["case_id"])
            session.add(row)
        known[data["case_id"]] = row
    row.petition_id = data["petition_id"]
    if handler or released:
        row.handler_id = handler


for _event in rules.EVENTS:
    subscriptions.on(_event, purpose="cases")(on_case_event)


@subscriptions.on(ROLE_GRANTED, purpose="people")
def remember_officer(session: Session, event: Event) -> None:
    data = event.data
    if data["role"] != "dept_officer" or not data["scope"].startswith(DEPARTMENT_SCOPE):
        return
    row = session.get(DepartmentOfficer, data["grant_id"]) or DepartmentOfficer(grant_id=data["grant_id"])
    row.user_id, row.department = data["user_id"], data["scope"][len(DEPARTMENT_SCOPE):]
    session.add(row)


@subscriptions.on(ROLE_REVOKED, purpose="people")
def forget_officer(session: Session, event: Event) -> None:
    session.execute(delete(DepartmentOfficer).where(DepartmentOfficer.grant_id == event.data["grant_id"]))


@subscriptions.on(CODE_ISSUED, purpose="codes")
def text_code(session: Session, event: Event) -> None:
    """Queue the code's text message for the delivery loop, which sends it at once (woken
    at commit) and retries with the deliveries' backoff until the code expires.

    The number and the text are opened from the transit seal and sealed again with
    notify's own key; the row goes once sent. Without an SMS gateway nothing is queued:
    in embedded mode (``make run``) the text is logged at WARNING instead, as a
    development aid; anywhere else a warning says a code could not be sent."""
    data = event.data
    expires_at: datetime = data["expires_at"]
    remaining = (expires_at - utcnow()).total_seconds()
    if remaining <= 0:
        log.info("one-time code expired before it could be sent; dropped",
                 extra={"event_id": event.id, "purpose": data["purpose"]})
        return
    info = session.info  # put on every session by service.setup
    transit = info["transit_key"]
    phone = transit.open(data["recipient_sealed"], RECIPIENT_PURPOSE)
    code = transit.open(data["code_sealed"], CODE_PURPOSE) if data["code_sealed"] else None
    text = templates.render_code(data["message"], data["purpose"], data["language"], code=code,
                                 minutes=max(1, math.ceil(remaining / 60)))
    if "sms" not in info["notify_config"].available_channels:
        if info["embedded"]:
            log.warning("no SMS gateway (development only): the text to %s would say: %s", mask_phone(phone), text)
        else:
            log.warning("a one-time code could not be texted: no SMS gateway is configured (GRIDGOV_SMS_URL)",
                        extra={"event_id": event.id, "purpose": data["purpose"]})
        return
    sealer = info["sealer"]
    session.add(CodeText(event_id=event.id, recipient_sealed=sealer.seal(phone, "code.sms"),
                         text_sealed=sealer.seal(text, "code.text"), expires_at=expires_at, attempts=0,
                         next_attempt_at=utcnow()))
    info["deliveries_written"] = True  # wakes the delivery loop after commit
