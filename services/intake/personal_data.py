"""What intake holds about a person (PIPL): the petitions she reported with the contact she
gave, their timelines, what she follows, and the photos she uploaded.

Erasure keeps her petitions (dispatch's cases and the figures refer to them) without
her: the contact sealed on each is emptied, the clear name and phone it held are
redacted from the petitions' words (description, result, her rating comment, the
timeline), her photos go (rows and bytes), and so do her follows. Stored idempotent
answers go with the kit's part of the erasure.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, select

from gridkit.privacy import PersonalData, redact

from . import domain
from .retention import delete_photos
from .tables import Follower, Petition, Photo, Step


class Petitions(PersonalData):
    def export(self, runtime, session, user_id: str) -> dict:
        key = runtime.extras["data_key"]
        reported = session.scalars(select(Petition).where(Petition.reporter_id == user_id)
                                   .order_by(Petition.submitted_at, Petition.id)).all()
        ids = [p.id for p in reported]
        steps: dict[str, list[dict]] = {}
        for step in session.scalars(select(Step).where(Step.petition_id.in_(ids)).order_by(Step.at, Step.id)):
            steps.setdefault(step.petition_id, []).append(
                {"at": step.at, "what": domain.describe(step.kind, json.loads(step.params), "zh-CN")})
        photos = session.scalars(select(Photo).where(Photo.uploaded_by == user_id)
                                 .order_by(Photo.uploaded_at, Photo.id)).all()
        follows = session.scalars(select(Follower).where(Follower.user_id == user_id)
                                  .order_by(Follower.since)).all()
        return {
            "petitions_reported": [{
                "id": p.id, "channel": p.channel, "category": p.category, "description": p.description,
                "place": {"lon": p.lon, "lat": p.lat, "building_id": p.building_id},
                "anonymous": p.anonymous,
                "contact": {"name": key.open_optional(p.contact_name, "name"),
                            "phone": key.open_optional(p.contact_phone, "phone")},
                "status": p.status, "submitted_at": p.submitted_at, "resolved_at": p.resolved_at,
                "result": p.result, "rating": p.rating, "rating_comment": p.rating_comment,
                "case_id": p.case_id, "photos": [ph.id for ph in photos if ph.petition_id == p.id],
                "timeline": steps.get(p.id, []),
            } for p in reported],
            "petitions_followed": [{"petition_id": f.petition_id, "how": f.via, "since": f.since} for f in follows],
            "photos_uploaded": [{"id": ph.id, "content_type": ph.content_type, "bytes": ph.size,
                                 "petition_id": ph.petition_id, "uploaded_at": ph.uploaded_at,
                                 "download": f"/photos/{ph.id}"} for ph in photos],
        }

    def erase(self, runtime, session, user_id: str, at) -> None:
        key = runtime.extras["data_key"]
        reported = session.scalars(select(Petition).where(Petition.reporter_id == user_id)
                                   .order_by(Petition.id).with_for_update()).all()
        values = {v for p in reported for v in (key.open_optional(p.contact_name, "name"),
                                                key.open_optional(p.contact_phone, "phone")) if v}
        for petition in reported:
            petition.contact_name = petition.contact_phone = None
            petition.description = redact(petition.description, values) or petition.description
            petition.result = redact(petition.result, values)
            petition.rating_comment = redact(petition.rating_comment, values)
        if values and reported:
            for step in session.scalars(select(Step).where(Step.petition_id.in_([p.id for p in reported]))):
                params = _redacted(json.loads(step.params), values)
                step.params = json.dumps(params, ensure_ascii=False, default=str)
        session.execute(delete(Follower).where(Follower.user_id == user_id))
        delete_photos(session, runtime.extras["photos"],
                      session.execute(select(Photo.id, Photo.sha256).where(Photo.uploaded_by == user_id)).all())


def _redacted(value, values: set[str]):
    if isinstance(value, str):
        return redact(value, values)
    if isinstance(value, list):
        return [_redacted(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v, values) for k, v in value.items()}
    return value
