"""What notify holds about a person (PIPL): the contacts she registered, her preferences,
her inbox and the email and SMS deliveries made to her.

Erasure deletes all of it and leaves a marker in her place (a preferences row with
``erased_at``, nothing else): later events about her cases, which still name her user
id, write nothing for her. Notices about her cases written to staff stay; templates
never put a name or a phone in them (staff's own words in a note aside).
"""

from __future__ import annotations

import json

from sqlalchemy import delete, select

from gridkit.privacy import PersonalData

from .tables import Contact, Delivery, Notice, Preference


class Notices(PersonalData):
    def export(self, runtime, session, user_id: str) -> dict:
        sealer = runtime.extras["sealer"]
        contact = session.get(Contact, user_id)
        prefs = session.get(Preference, user_id)
        notices = session.scalars(select(Notice).where(Notice.recipient_id == user_id).order_by(Notice.id)).all()
        deliveries = session.scalars(select(Delivery).where(Delivery.recipient_id == user_id)
                                     .order_by(Delivery.id)).all()
        return {
            "contacts": None if contact is None else {
                "email": sealer.open(contact.email_sealed, "contact.email") if contact.email_sealed else None,
                "phone": sealer.open(contact.phone_sealed, "contact.sms") if contact.phone_sealed else None,
                "updated_at": contact.updated_at},
            "preferences": None if prefs is None else {
                "language": prefs.language, "channels": json.loads(prefs.channels),
                "muted_kinds": json.loads(prefs.muted_kinds), "updated_at": prefs.updated_at},
            "notices": [{"id": n.id, "kind": n.kind, "title": n.title, "body": n.body, "case_id": n.case_id,
                         "petition_id": n.petition_id, "created_at": n.created_at, "read_at": n.read_at}
                        for n in notices],
            "deliveries": [{"notice_id": d.notice_id, "channel": d.channel, "status": d.status,
                            "attempts": d.attempts, "created_at": d.created_at, "sent_at": d.sent_at}
                           for d in deliveries],
        }

    def erase(self, runtime, session, user_id: str, at) -> None:
        mine = select(Notice.id).where(Notice.recipient_id == user_id)
        session.execute(delete(Delivery).where((Delivery.recipient_id == user_id) | Delivery.notice_id.in_(mine)))
        session.execute(delete(Notice).where(Notice.recipient_id == user_id))
        session.execute(delete(Contact).where(Contact.user_id == user_id))
        marker = session.get(Preference, user_id) or Preference(user_id=user_id)
        marker.language, marker.channels, marker.muted_kinds = "zh-CN", "{}", "[]"
        marker.updated_at, marker.erased_at = at, at
        session.add(marker)
        # A batch of events in this transaction may have read her settings already.
        if user_id in session.info.get("preferences", {}):
            session.info["preferences"][user_id] = marker
            session.info["contacts"][user_id] = None
