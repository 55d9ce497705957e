"""A case nobody can take raises an alert instead of waiting silently: a metric operators
alert on and a critical notice to the county admins (the sysadmins when there is none);
it is offered as soon as someone is there to take it."""

from datetime import UTC, datetime

from prometheus_client import REGISTRY

from contracts.identity import ROLE_GRANTED, ROLE_REVOKED, USER_DISABLED
from dispatch.testing import NORTH, SW1, feed, submit

from .conftest import events

COUNTY_ADMIN_GRANT = 4  # admin-county in dispatch.testing.GRANTS


def alerts(queue: str, reason: str = "nobody_to_offer") -> float:
    return REGISTRY.get_sample_value("gridgov_dispatch_unattended_total", {"queue": queue, "reason": reason}) or 0.0


def grant(dispatch, grant_id: int, user: str, role: str, scope: str = "county", *, revoke: bool = False) -> None:
    feed(dispatch, ROLE_REVOKED if revoke else ROLE_GRANTED,
         {"grant_id": grant_id, "user_id": user, "role": role, "scope": scope, "by": None})


def case(client, as_, case_id: str, who: str = "admin-west") -> dict:
    return client.get(f"/cases/{case_id}", headers=as_(who)).json


def test_a_catch_all_case_nobody_staffs_alerts_the_sysadmins_then_finds_a_new_county_admin(dispatch, client, as_, tokens):
    grant(dispatch, 50, "root", "sysadmin")
    grant(dispatch, COUNTY_ADMIN_GRANT, "admin-county", "county_admin", revoke=True)
    before = alerts("catch_all")

    case_id = submit(dispatch, NORTH)  # no grid covers the north: the county's catch-all queue

    root = {"Authorization": f"Bearer {tokens.issue([('county_admin', 'county')], sub='root')}"}
    waiting = client.get(f"/cases/{case_id}", headers=root).json
    assert (waiting["catch_all"], waiting["state"], waiting["offered_to"]) == (True, "offered", [])
    assert waiting["unattended_since"] is not None
    assert waiting["transitions"][-1]["action"] == "alert" and "sysadmins" in waiting["transitions"][-1]["reason"]
    [alert] = events(dispatch, "dispatch.case.unattended")
    assert (alert["case_id"], alert["reason"], alert["catch_all"], alert["notify"]) == (
        case_id, "nobody_to_offer", True, ["root"])
    assert alerts("catch_all") == before + 1
    listed = client.get("/cases", query_string={"unattended": "true"}, headers=root).json["items"]
    assert [c["id"] for c in listed] == [case_id]

    # a county admin is granted: the case is offered to them at once, and no longer flagged
    grant(dispatch, 51, "new-county-admin", "county_admin")
    offered = client.get(f"/cases/{case_id}", headers=root).json
    assert (offered["offered_to"], offered["unattended_since"]) == (["new-county-admin"], None)
    assert events(dispatch, "dispatch.case.assigned")[-1]["offered_to"] == ["new-county-admin"]
    assert len(events(dispatch, "dispatch.case.unattended")) == 1


def test_a_staffed_catch_all_queue_raises_no_alert(dispatch, client, as_):
    before = alerts("catch_all")
    case_id = submit(dispatch, NORTH)
    assert case(client, as_, case_id, "admin-county")["offered_to"] == ["admin-county"]
    assert events(dispatch, "dispatch.case.unattended") == [] and alerts("catch_all") == before


def test_when_the_only_county_admin_leaves_their_catch_all_cases_alert_the_sysadmins(dispatch, client, as_):
    grant(dispatch, 50, "root", "sysadmin")
    case_id = submit(dispatch, NORTH)
    feed(dispatch, USER_DISABLED, {"user_id": "admin-county", "kind": "staff", "by": "root",
                                   "at": datetime.now(UTC)}, queue="dispatch.roles")
    [alert] = events(dispatch, "dispatch.case.unattended")
    assert (alert["case_id"], alert["notify"]) == (case_id, ["root"])
    [handed] = events(dispatch, "dispatch.case.handed_back")
    assert (handed["reason"], handed["offered_to"]) == ("offers_withdrawn", [])


def test_a_case_awaiting_an_approval_nobody_can_give_alerts_the_county_admins(dispatch, client, as_):
    grant(dispatch, 1, "admin-west", "community_admin", "division:DL-01-01", revoke=True)
    assert client.put("/communities/DL-01-01/settings", json={"approval_required": True, "review_required": False},
                      headers=as_("admin-county")).status_code == 200
    grant(dispatch, COUNTY_ADMIN_GRANT, "admin-county", "county_admin", revoke=True)
    grant(dispatch, 60, "county-2", "county_admin")
    waiting = submit(dispatch, SW1)  # approvers: the county admins, since the community has none
    assert events(dispatch, "dispatch.case.unattended") == []
    before = alerts("grid", "no_approver")
    feed(dispatch, USER_DISABLED, {"user_id": "county-2", "kind": "staff", "by": None,
                                   "at": datetime.now(UTC)}, queue="dispatch.roles")
    [alert] = events(dispatch, "dispatch.case.unattended")
    assert (alert["case_id"], alert["reason"], alert["catch_all"]) == (waiting, "no_approver", False)
    assert alerts("grid", "no_approver") == before + 1
    second = submit(dispatch, SW1)
    assert [a["case_id"] for a in events(dispatch, "dispatch.case.unattended")] == [waiting, second]
