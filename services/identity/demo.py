"""Demo and bootstrap accounts (``make run``, the lead's county seeding).

``seed(runtime, people)`` is idempotent: accounts are found by username (or phone)
and only missing ones are created, so running it twice changes nothing.

``add_staff(runtime, staff)`` creates thousands of staff quickly: they get no
password (argon2 for 12 k people would take minutes) and therefore cannot log in
until an admin sets one with ``PUT /users/<id>/password``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select

from . import accounts
from .tables import User

log = logging.getLogger(__name__)

# Demo credentials: for embedded/demo mode only. Change them anywhere real.
ADMINS = [
    {"username": "sysadmin", "name": "系统管理员", "kind": "staff", "password": "gridgov-sysadmin",
     "grants": [("sysadmin", "county")]},
    {"username": "county", "name": "县级管理员", "kind": "staff", "password": "gridgov-county",
     "grants": [("county_admin", "county")]},
]


def seed(runtime, people: Iterable[dict] = (), *, demo_admins: bool = True) -> dict[str, str]:
    """Create the sysadmin, the county admin and ``people`` unless they exist; return
    {username or phone: user id}.

    A person is ``{"name", "kind", "username"?, "phone"?, "password"?, "national_id"?,
    "grants": [(role, scope), ...]}``; a resident gets the resident grant by default.
    """
    ids: dict[str, str] = {}
    key = runtime.extras["data_key"]
    for person in [*(ADMINS if demo_admins else []), *people]:
        handle = person.get("username") or person["phone"]
        with runtime.db.transaction() as session:
            existing = (session.scalar(select(User).where(User.username == person["username"]))
                        if person.get("username") else accounts.find_by_phone(session, key, person["phone"]))
            if existing is None:
                grants = person.get("grants") or ([("resident", "county")] if person["kind"] == "resident" else [])
                existing = accounts.create_user(
                    session, key, kind=person["kind"], name=person["name"], phone=person.get("phone"),
                    national_id=person.get("national_id"), username=person.get("username"),
                    password=person.get("password"), grants=[tuple(g) for g in grants])
            ids[handle] = existing.id
    log.info("identity demo accounts ready", extra={"accounts": len(ids)})
    return ids


def create_user_with_grants(session, runtime, *, name: str, kind: str = "staff",
                            phone: str | None = None, username: str | None = None,
                            grants: Iterable[tuple[str, str]] = (), password: str | None = None):
    """One account with its grants in the caller's transaction (no password = cannot log in)."""
    return accounts.create_user(session, runtime.extras["data_key"], kind=kind, name=name,
                                phone=phone, username=username, password=password,
                                grants=list(grants))


def add_staff(runtime, staff: Iterable[dict], *, batch: int = 500) -> dict[str, str]:
    """Bulk-create passwordless staff: ``{"key", "name", "phone"?, "grants": [(role, scope)]}``
    (the shape of grids.demo staff, with grants). The same key listed twice (one person
    staffing several grids) becomes one account with all its grants. Idempotent by phone.
    Returns {key: user id}."""
    people: dict[str, dict] = {}
    for record in staff:
        person = people.setdefault(record["key"], {**record, "grants": []})
        person["grants"] += [tuple(g) for g in record.get("grants", ())]
    key = runtime.extras["data_key"]
    ids: dict[str, str] = {}
    items = list(people.items())
    for start in range(0, len(items), batch):
        with runtime.db.transaction() as session:
            for handle, person in items[start:start + batch]:
                user = accounts.find_by_phone(session, key, person["phone"]) if person.get("phone") else None
                if user is None:
                    user = accounts.create_user(session, key, kind=person.get("kind", "staff"),
                                                name=person["name"], phone=person.get("phone"),
                                                grants=list(dict.fromkeys(person["grants"])))
                ids[handle] = user.id
    return ids
