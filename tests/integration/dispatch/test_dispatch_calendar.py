"""Working-hours deadlines count the national calendar (public holidays off, 调休 make-up
days on) and the county's own days, which county admins keep through the API."""

from datetime import datetime
from zoneinfo import ZoneInfo

from dispatch import cases, workdays
from dispatch.projection import current_snapshot
from dispatch.testing import SW1, petition

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Wednesday 30 September 2026, 17:00: National Day and Mid-Autumn give 1–7 October off, and
# Saturday 10 October is a make-up working day. 20 working hours: 1 h that evening, 9 h on
# Thursday 8, 9 h on Friday 9, the last hour on the make-up Saturday.
OPENED = datetime(2026, 9, 30, 17, tzinfo=SHANGHAI)
TWENTY_HOURS = 20 * 60


def open_at(dispatch, moment: datetime) -> dict:
    with dispatch.db.transaction() as session:
        case = cases.open_case(session, current_snapshot(session), petition(
            SW1, working_hours=True, claim_minutes=TWENTY_HOURS), moment)
        return {"id": case.id, "claim_due": case.step_due_at.astimezone(SHANGHAI)}


def test_a_deadline_skips_national_day_and_counts_the_make_up_saturday(dispatch, client, as_):
    case = open_at(dispatch, OPENED)
    assert case["claim_due"] == datetime(2026, 10, 10, 10, tzinfo=SHANGHAI)
    shown = client.get(f"/cases/{case['id']}", headers=as_("admin-county")).json
    assert datetime.fromisoformat(shown["step_due_at"]) == case["claim_due"]


def test_a_county_day_off_moves_the_deadline_and_removing_it_moves_it_back(dispatch, client, as_):
    county = as_("admin-county")
    answer = client.put("/calendar/days/2026-10-09", json={"kind": "holiday", "name": "县庆"}, headers=county)
    assert answer.status_code == 200
    assert (answer.json["date"], answer.json["kind"], answer.json["name"]) == ("2026-10-09", "holiday", "县庆")
    # 1 h on the 30th, 9 h on the 8th, 9 h on the make-up Saturday, the last hour on Monday 12th
    assert open_at(dispatch, OPENED)["claim_due"] == datetime(2026, 10, 12, 10, tzinfo=SHANGHAI)

    calendar = client.get("/calendar?year=2026", headers=as_("worker-sw1-a")).json
    assert calendar["timezone"] == "Asia/Shanghai" and calendar["working_hours"] == "09:00-18:00"
    assert [(d["date"], d["kind"]) for d in calendar["days"]] == [("2026-10-09", "holiday")]
    assert calendar["national_years"][0] <= 2026 <= calendar["national_years"][1]
    assert client.get("/calendar?year=2025", headers=county).json["days"] == []

    assert client.delete("/calendar/days/2026-10-09", headers=county).status_code == 204
    assert client.delete("/calendar/days/2026-10-09", headers=county).status_code == 404
    assert open_at(dispatch, OPENED)["claim_due"] == datetime(2026, 10, 10, 10, tzinfo=SHANGHAI)


def test_a_county_working_day_counts_a_day_the_nation_rests(dispatch, client, as_):
    answer = client.put("/calendar/days/2026-10-07", json={"kind": "working_day", "name": "防汛值守"},
                        headers=as_("admin-county"))
    assert answer.status_code == 200
    # 1 h on the 30th, 9 h on the 7th, 9 h on the 8th, the last hour on Friday 9th
    assert open_at(dispatch, OPENED)["claim_due"] == datetime(2026, 10, 9, 10, tzinfo=SHANGHAI)


def test_only_county_admins_keep_the_calendar_and_dates_are_checked(dispatch, client, as_):
    day = {"kind": "holiday", "name": "三月街"}
    assert client.put("/calendar/days/2026-04-20", json=day, headers=as_("admin-west")).status_code == 403
    assert client.put("/calendar/days/2026-04-20", json=day, headers=as_("worker-sw1-a")).status_code == 403
    assert client.put("/calendar/days/2026-02-30", json=day, headers=as_("admin-county")).status_code == 422
    assert client.put("/calendar/days/20260420", json=day, headers=as_("admin-county")).status_code == 422
    wrong = client.put("/calendar/days/2026-04-20", json={"kind": "festival", "name": "x"}, headers=as_("admin-county"))
    assert wrong.status_code == 422 and "kind" in wrong.json["errors"]
    assert client.get("/calendar", headers=as_("admin-county")).json["days"] == []


def test_the_calendar_is_read_once_and_rebuilt_only_after_a_change(dispatch, client, as_):
    def current():
        with dispatch.db.transaction() as session:
            return workdays.calendar(session)

    first = current()
    assert current() is first  # no query for the days while the revision stands
    client.put("/calendar/days/2026-04-20", json={"kind": "holiday", "name": "三月街"}, headers=as_("admin-county"))
    changed = current()
    assert changed is not first and not changed.is_working_day(datetime(2026, 4, 20).date())
    assert current() is changed


def test_the_county_calendar_works_on_sqlite_too(make_runtime, tokens):
    from dispatch.service import spec
    from dispatch.testing import headers, seed_world

    dispatch = make_runtime(spec, db="sqlite")
    seed_world(dispatch)
    client = dispatch.app(testing=True).test_client()
    county = headers(tokens, "admin-county")
    assert client.put("/calendar/days/2026-10-09", json={"kind": "holiday", "name": "县庆"},
                      headers=county).status_code == 200
    assert open_at(dispatch, OPENED)["claim_due"] == datetime(2026, 10, 12, 10, tzinfo=SHANGHAI)
    assert [d["date"] for d in client.get("/calendar", headers=county).json["days"]] == ["2026-10-09"]
