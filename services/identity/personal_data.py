"""What identity holds about a person (PIPL): the account, its grants and its history.

Erasure itself starts here (``accounts.erase``, from ``POST /me/erasure`` or an
admin's ``POST /users/<id>/erasure``) and publishes ``identity.user.erased``; when
that event comes back on identity's own queue the account is already erased and
:meth:`Accounts.erase` has nothing left to do.
"""

from __future__ import annotations

from sqlalchemy import func, select

from gridkit.privacy import PersonalData

from . import accounts
from .tables import RefreshToken, StatusChange, User


class Accounts(PersonalData):
    def export(self, runtime, session, user_id: str) -> dict:
        user = session.get(User, user_id) if len(user_id) <= 36 else None
        if user is None:
            return {}
        contact = accounts.contact_of(user, runtime.extras["data_key"])
        sessions = session.scalar(select(func.count()).select_from(RefreshToken).where(
            RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None), RefreshToken.rotated_at.is_(None),
            RefreshToken.expires_at > accounts.utcnow()))
        return {
            "account": {
                "id": user.id, "kind": user.kind, "name": user.display_name, "username": user.username,
                "phone": contact.phone, "national_id": contact.national_id,
                "has_password": user.password_hash is not None, "disabled": user.disabled,
                "created_at": user.created_at, "erased_at": user.erased_at,
            },
            "roles": [{"role": g.role, "scope": g.scope, "granted_at": g.granted_at} for g in user.grants],
            "signed_in_sessions": sessions,
            "status_changes": [{"action": c.action, "reason": c.reason, "at": c.at} for c in session.scalars(
                select(StatusChange).where(StatusChange.user_id == user.id).order_by(StatusChange.id))],
        }

    def erase(self, runtime, session, user_id: str, at) -> None:
        user = accounts.lock_user(session, user_id) if len(user_id) <= 36 else None
        if user is not None:
            accounts.scrub(session, runtime.extras["data_key"], user, at, runtime.extras["transit_key"])
