"""秒认领 and the state machine: one winner, 403 outside the grid, 409 with a reason."""

import threading

from dispatch.tables import Case, Transition, outbox
from dispatch.testing import SW1, submit

from .conftest import count, events


def race_to_claim(dispatch, as_, case_id: str, users: tuple[str, ...]) -> dict:
    """Each user claims from their own thread and client, all released at once."""
    barrier = threading.Barrier(len(users))
    answers: dict = {}

    def claim(user, client):
        barrier.wait()
        answers[user] = client.post(f"/cases/{case_id}/claim", headers=as_(user))

    threads = [threading.Thread(target=claim, args=(user, dispatch.app(testing=True).test_client()))
               for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_two_workers_racing_to_claim_get_one_201_and_one_409(dispatch, as_):
    for _ in range(5):  # a few rounds: the race must hold every time
        case_id = submit(dispatch, SW1)
        answers = race_to_claim(dispatch, as_, case_id, ("worker-sw1-a", "worker-sw1-b"))
        statuses = sorted(answer.status_code for answer in answers.values())
        assert statuses == [201, 409]
        loser = next(a for a in answers.values() if a.status_code == 409)
        assert loser.json["type"].endswith("/conflict") and "claimed" in loser.json["detail"]
        winner = next(user for user, a in answers.items() if a.status_code == 201)
        claims = [e for e in events(dispatch, "dispatch.case.claimed") if e["case_id"] == case_id]
        assert [e["by"] for e in claims] == [winner]
        assert count(dispatch, Transition, Transition.case_id == case_id, Transition.action == "claim") == 1


def test_claiming_a_case_outside_your_grid_is_forbidden(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    for outsider in ("worker-se", "worker-uw", "officer-police"):
        answer = client.post(f"/cases/{case_id}/claim", headers=as_(outsider))
        assert answer.status_code == 403 and "outside your grid" in answer.json["detail"]
    assert client.post(f"/cases/{case_id}/claim", headers=as_("resident-1")).status_code == 403


def test_the_grid_head_may_claim_a_case_offered_to_the_grids_workers(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    answer = client.post(f"/cases/{case_id}/claim", headers=as_("head-sw1"))
    assert answer.status_code == 201 and answer.json["claimed_by"] == "head-sw1"
    assert answer.json["step"] == "handle" and answer.json["light"] == "green"


def test_illegal_transitions_are_refused_with_the_reason_and_nothing_is_written(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    assert client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a")).status_code == 201

    def written():
        return (count(dispatch, Transition), count(dispatch, outbox.table), count(dispatch, Case, Case.state == "claimed"))

    before = written()
    refusals = [
        ("worker-sw1-a", "claim", None, "only an offered case can be claimed"),
        ("admin-west", "approve", {}, "cannot approve a case that is claimed"),
        ("admin-west", "review", {"approved": True}, "cannot review a case that is claimed"),
        ("admin-west", "extension/decision", {"approved": True}, "no extension request is waiting"),
        ("admin-west", "whistles/nope/score", {"department": "police", "score": 5}, None),
    ]
    for user, action, body, reason in refusals:
        answer = client.post(f"/cases/{case_id}/{action}", json=body, headers=as_(user))
        if reason is None:
            assert answer.status_code == 404
            continue
        assert answer.status_code == 409, (action, answer.json)
        assert reason in answer.json["detail"] and answer.json["state"] == "claimed"
    resolved = client.post(f"/cases/{case_id}/resolve", json={"result": "drain cleared"}, headers=as_("worker-sw1-a"))
    assert resolved.status_code == 200
    again = client.post(f"/cases/{case_id}/resolve", json={"result": "again"}, headers=as_("worker-sw1-a"))
    assert again.status_code == 409 and "cannot resolve a case that is resolved" in again.json["detail"]
    assert written()[0] == before[0] + 1  # only the resolve


def test_only_the_handler_resolves_returns_or_asks_for_more_time(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a"))
    for action, body in (("resolve", {"result": "x"}), ("return", {"reason": "x"}),
                         ("extension", {"hours": 4, "reason": "parts"})):
        answer = client.post(f"/cases/{case_id}/{action}", json=body, headers=as_("worker-sw1-b"))
        assert answer.status_code == 403, action


def test_bad_input_is_a_422_problem_never_a_500(dispatch, client, as_):
    case_id = submit(dispatch, SW1)
    client.post(f"/cases/{case_id}/claim", headers=as_("worker-sw1-a"))
    worker = as_("worker-sw1-a")
    for action, body in (("resolve", {}), ("resolve", {"result": ""}), ("resolve", {"result": "x", "more": 1}),
                         ("notes", {"text": ""}), ("notes", {"text": "x", "photos": ["a"] * 10}),
                         ("extension", {"hours": 0, "reason": "x"}), ("extension", {"hours": "many", "reason": "x"})):
        answer = client.post(f"/cases/{case_id}/{action}", json=body, headers=worker)
        assert answer.status_code == 422, (action, body, answer.json)
        assert answer.headers["Content-Type"] == "application/problem+json"
    assert client.get("/cases?light=purple", headers=worker).status_code == 422
    assert client.get("/cases?cursor=@@@", headers=worker).status_code == 422
    assert client.get("/cases/no-such-case", headers=worker).status_code == 404
    assert client.post("/cases/no-such-case/claim", headers=worker).status_code == 404


def test_a_claim_decided_on_a_stale_read_still_loses_to_the_committed_one(dispatch):
    from datetime import UTC, datetime

    import pytest

    from dispatch import cases
    from dispatch.domain import Refused
    from dispatch.projection import current_snapshot
    from gridkit.auth import Grant, Principal

    case_id = submit(dispatch, SW1)
    first, second = (Principal(user, "user", (Grant("grid_worker", "grid:12"),))
                     for user in ("worker-sw1-a", "worker-sw1-b"))
    with dispatch.db.transaction() as late:
        stale = cases.load(late, case_id, lock=False)  # this session now believes the case is free
        assert stale.state == "offered"
        with dispatch.db.transaction() as quick:
            cases.claim(quick, current_snapshot(quick), case_id, first, datetime.now(UTC))
        with pytest.raises(Refused, match="someone else claimed this case first"):
            cases.claim(late, current_snapshot(late), case_id, second, datetime.now(UTC))
    assert [e["by"] for e in events(dispatch, "dispatch.case.claimed")] == ["worker-sw1-a"]
