"""What the registry holds about a person (PIPL): where they live (人屋关联), the name it
learnt from identity, and their staffing terms.

Erasure deletes where she lives (every binding to a household, past ones too) and
her name; staffing terms stay, by user id, as the record of who ran a grid when.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from gridkit.privacy import ERASED_NAME, PersonalData

from .tables import Building, Grid, Household, Person, Resident, StaffAssignment, Unit


class Residence(PersonalData):
    def export(self, runtime, session, user_id: str) -> dict:
        person = session.get(Person, user_id)
        homes = session.execute(
            select(Resident, Household, Unit, Building)
            .join(Household, Household.id == Resident.household_id)
            .join(Unit, Unit.id == Household.unit_id)
            .join(Building, Building.id == Unit.building_id)
            .where(Resident.user_id == user_id).order_by(Resident.id)).all()
        terms = session.execute(select(StaffAssignment, Grid.code, Grid.name)
                                .join(Grid, Grid.id == StaffAssignment.grid_id)
                                .where(StaffAssignment.user_id == user_id).order_by(StaffAssignment.id)).all()
        return {
            "person": None if person is None else {
                "name_as_shown_to_staff": person.display_name, "kind": person.kind,
                "known_since": person.registered_at},
            "households": [{
                "building": {"code": b.code, "name": b.name}, "unit": u.name, "household": h.code,
                "floor": h.floor, "since": r.since, "until": r.until} for r, h, u, b in homes],
            "staffing": [{"grid": {"code": code, "name": name}, "role": t.role, "building_id": t.building_id,
                          "since": t.since, "until": t.until} for t, code, name in terms],
        }

    def erase(self, runtime, session, user_id: str, at) -> None:
        session.execute(delete(Resident).where(Resident.user_id == user_id))
        person = session.get(Person, user_id)
        if person is not None:
            person.display_name = ERASED_NAME
