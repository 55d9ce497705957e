"""PIPL in intake: staff reads of a reporter's contact are audited; her part of the
download; erasure keeps her petitions without her; photos have a retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from gridkit import privacy
from intake import retention
from intake.tables import Follower, Petition, Photo, Step
from intake.testing import JPEG, PNG, feed_case

from .conftest import count, petition_body, submit, upload

NAME, PHONE = "林晓燕", "13987654321"


def trail(runtime) -> list[tuple]:
    with runtime.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT actor_id, action, subject_id, resource FROM audit_trail ORDER BY id"))]


def stored_photos(runtime) -> set[str]:
    return {p.name for p in (runtime.settings.data_dir / "photos").rglob("*") if p.is_file()}


def test_staff_seeing_a_reporters_contact_in_clear_leave_a_line_and_masked_views_do_not(intake, client, people,
                                                                                      tokens):
    reporter, reporter_h = people.resident(name=NAME)
    petition = submit(client, reporter_h, contact={"phone": PHONE})
    anonymous = submit(client, reporter_h, contact={"phone": PHONE}, anonymous=True, separate=True)
    county, county_h = people.county_admin()
    _, community_h = people.person(("community_admin", "division:DL-01-01"))
    handler, handler_h = people.worker()
    feed_case(intake, "claimed", petition, by=handler)

    assert client.get(f"/petitions/{petition['id']}", headers=reporter_h).json["reporter"]["name"] == NAME
    assert client.get(f"/petitions/{petition['id']}", headers=county_h).json["reporter"]["phone"] == PHONE
    assert client.get(f"/petitions/{petition['id']}", headers=handler_h).json["reporter"]["masked"] is False
    assert client.get(f"/petitions/{petition['id']}", headers=community_h).json["reporter"]["masked"] is True
    assert client.get(f"/petitions/{anonymous['id']}", headers=county_h).json["reporter"] is None
    listed = client.get("/petitions", headers=county_h).json["items"]
    assert {p["id"] for p in listed} == {petition["id"], anonymous["id"]}
    resource = f"petition:{petition['id']}"
    assert trail(intake) == [(county, "read_contact", reporter, resource), (handler, "read_contact", reporter, resource),
                             (county, "read_contact", reporter, resource)]
    auditor = tokens.header(("auditor", "county"))
    lines = client.get("/audit", headers=auditor, query_string={"subject": reporter}).json["items"]
    assert [line["actor_id"] for line in lines] == [county, handler, county]
    assert lines[0]["actor_roles"] == ["county_admin"] and lines[0]["at"].endswith("+00:00")
    for other in (county_h, handler_h, reporter_h):
        assert client.get("/audit", headers=other).status_code == 403


def test_her_part_of_the_download_has_her_petitions_contact_timeline_photos_and_follows(intake, client, people):
    me, mine = people.resident(name=NAME)
    photo = upload(client, mine).json["id"]
    petition = submit(client, mine, contact={"phone": PHONE}, photos=[photo])
    _, other = people.resident(name="李四")
    theirs = submit(client, other, separate=True, place={"lon": 100.07, "lat": 25.07})
    assert client.post(f"/petitions/{theirs['id']}/followers", headers=mine).status_code == 201

    part = client.get("/me/personal-data", headers=mine)
    assert part.status_code == 200, part.json
    data = part.json["data"]
    [reported] = data["petitions_reported"]
    assert reported["id"] == petition["id"] and reported["contact"] == {"name": NAME, "phone": PHONE}
    assert reported["photos"] == [photo] and reported["submitted_at"].endswith("+08:00")
    assert reported["timeline"][0]["what"].startswith("诉求已提交")
    assert data["petitions_followed"] == [{"petition_id": theirs["id"], "how": "me_too",
                                           "since": data["petitions_followed"][0]["since"]}]
    assert [p["id"] for p in data["photos_uploaded"]] == [photo]
    assert part.json["reads_by_staff"] == []


def test_erasure_keeps_her_petitions_without_her_name_phone_photos_or_follows(intake, client, people):
    me, mine = people.resident(name=NAME)
    mine_photo = upload(client, mine, JPEG).json["id"]
    shared_photo = upload(client, mine, PNG, "image/png").json["id"]
    answer = client.post("/petitions", headers=mine | {"Idempotency-Key": "leak-1"}, json=petition_body(
        contact={"phone": PHONE}, photos=[mine_photo, shared_photo], description=f"楼道漏水，请联系{NAME}，电话{PHONE}"))
    assert answer.status_code == 201, answer.json
    petition = answer.json
    # The same bytes uploaded by someone else stay stored for them.
    _, other = people.resident(name="李四")
    other_photo = upload(client, other, PNG, "image/png").json["id"]
    theirs = submit(client, other, separate=True, place={"lon": 100.07, "lat": 25.07}, photos=[other_photo])
    assert client.post(f"/petitions/{theirs['id']}/followers", headers=mine).status_code == 201
    feed_case(intake, "resolved", petition, by="worker-1", result=f"已联系{NAME}并修复")
    assert client.post(f"/petitions/{petition['id']}/rating", headers=mine,
                       json={"rating": 2, "comment": f"{NAME}不满意"}).status_code == 200
    assert client.post(f"/petitions/{petition['id']}/rework", headers=mine,
                       json={"reason": f"我是{NAME}，电话{PHONE}，还在漏"}).status_code == 200
    with intake.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM idempotency_keys")).scalar_one() > 0

    with intake.db.transaction() as session:
        privacy.erase(intake, session, me, datetime.now(UTC))

    with intake.db.transaction() as session:
        kept = session.get(Petition, petition["id"])
        assert kept.contact_name is None and kept.contact_phone is None
        assert kept.description == "楼道漏水，请联系***，电话***" and kept.status == "reopened"
        assert kept.reporter_id == me and kept.case_id is not None
        steps = session.scalars(select(Step.params).where(Step.petition_id == kept.id)).all()
        assert NAME not in json.dumps(steps, ensure_ascii=False) and PHONE not in "".join(steps)
        assert any("我是***，电话***，还在漏" in s for s in steps)
        assert session.scalars(select(Follower).where(Follower.user_id == me)).all() == []
        assert session.get(Petition, theirs["id"]).reporter_id != me
    assert count(intake, Photo, Photo.uploaded_by == me) == 0
    assert count(intake, Photo, Photo.id == other_photo) == 1
    assert stored_photos(intake) == {session_sha(intake, other_photo)}
    with intake.db.engine.connect() as conn:
        subjects = conn.execute(text("SELECT subject FROM idempotency_keys")).scalars().all()
    assert me not in subjects
    # The petition still reads for staff, with no reporter contact left to show.
    _, county_h = people.county_admin()
    shown = client.get(f"/petitions/{petition['id']}", headers=county_h).json
    assert shown["reporter"]["name"] is None and shown["reporter"]["phone"] is None and shown["photos"] == []
    assert client.get(f"/photos/{mine_photo}", headers=county_h).status_code == 404
    with intake.db.transaction() as session:  # a replay changes nothing
        privacy.erase(intake, session, me, datetime.now(UTC))


def session_sha(runtime, photo_id: str) -> str:
    with runtime.db.transaction() as session:
        return session.get(Photo, photo_id).sha256


@pytest.mark.parametrize("status, ended_days_ago, kept", [
    ("closed", 400, False), ("withdrawn", 400, False), ("merged", 400, False),
    ("closed", 300, True), ("claimed", 400, True), ("resolved", 400, True)])
def test_a_petitions_photos_go_a_retention_after_it_ended(intake, client, people, status, ended_days_ago, kept):
    _, mine = people.resident()
    photo = upload(client, mine).json["id"]
    petition = submit(client, mine, photos=[photo])
    with intake.db.transaction() as session:
        session.execute(update(Petition).where(Petition.id == petition["id"]).values(
            status=status, updated_at=datetime.now(UTC) - timedelta(days=ended_days_ago)))
    assert intake.extras["photo_retention_days"] == 365
    deleted = retention.purge(intake)
    assert (deleted, count(intake, Photo)) == ((0, 1) if kept else (1, 0))
    assert bool(stored_photos(intake)) == kept


def test_a_photo_on_no_petition_goes_a_retention_after_its_upload(intake, client, people):
    _, worker = people.worker()  # staff's photos from the site: dispatch's notes refer to them
    old, recent = upload(client, worker, JPEG).json["id"], upload(client, worker, PNG, "image/png").json["id"]
    with intake.db.transaction() as session:
        session.execute(update(Photo).where(Photo.id == old).values(
            uploaded_at=datetime.now(UTC) - timedelta(days=366)))
    assert retention.purge(intake) == 1
    assert [p for p in (old, recent) if count(intake, Photo, Photo.id == p)] == [recent]
    intake.extras["photo_retention_days"] = 0.0001  # GRIDGOV_PHOTO_RETENTION_DAYS, as configured
    assert retention.purge(intake, now=datetime.now(UTC) + timedelta(minutes=1)) == 1
    assert count(intake, Photo) == 0 and stored_photos(intake) == set()


def test_the_photo_retention_is_configured(make_runtime, monkeypatch):
    from intake.service import spec

    monkeypatch.setenv("GRIDGOV_PHOTO_RETENTION_DAYS", "30")
    assert make_runtime(spec, db="sqlite").extras["photo_retention_days"] == 30
    assert make_runtime(spec, db="sqlite", extra={"GRIDGOV_PHOTO_RETENTION_DAYS": "7"}) \
        .extras["photo_retention_days"] == 7

