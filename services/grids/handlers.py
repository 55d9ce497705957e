"""What the registry listens to: identity's accounts and role grants (queue grids.people),
and that someone left (their account disabled: their staffing terms end)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contracts.identity import ROLE_GRANTED, ROLE_REVOKED, USER_DISABLED, USER_REGISTERED
from gridkit.consumer import Event, Subscriptions

from .staffing import end_terms_of
from .tables import Person, RoleGrant

subscriptions = Subscriptions("grids")


@subscriptions.on(USER_REGISTERED, purpose="people")
def remember_person(session: Session, event: Event) -> None:
    data = event.data
    person = session.get(Person, data["user_id"]) or Person(user_id=data["user_id"])
    person.kind, person.display_name = data["kind"], data["display_name"]
    session.add(person)


@subscriptions.on(ROLE_GRANTED, purpose="people")
def remember_grant(session: Session, event: Event) -> None:
    data = event.data
    grant = session.get(RoleGrant, data["grant_id"]) or RoleGrant(grant_id=data["grant_id"])
    grant.user_id, grant.role, grant.scope, grant.revoked = data["user_id"], data["role"], data["scope"], 0
    session.add(grant)


@subscriptions.on(ROLE_REVOKED, purpose="people")
def forget_grant(session: Session, event: Event) -> None:
    grant = session.get(RoleGrant, event.data["grant_id"])
    if grant is not None:
        grant.revoked = 1


@subscriptions.on(USER_DISABLED, purpose="people")
def end_staffing(session: Session, event: Event) -> None:
    end_terms_of(session, event.data["user_id"], event.data["at"])
