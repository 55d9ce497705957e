"""A token with broad staff roles for any service, for tests that exercise every route."""

from __future__ import annotations

# Every role a route may ask for, at the county: the widest caller there is.
BROAD_GRANTS = (("sysadmin", "county"), ("county_admin", "county"), ("resident", "county"))


def broad_staff_headers(runtime, tokens) -> dict[str, str]:
    """Authorization for ``runtime``'s service with :data:`BROAD_GRANTS`.

    identity trusts only its own keys: its token is issued by its keyring for an
    account created here (no password, so no argon2 hashing)."""
    if runtime.spec.name != "identity":
        return tokens.header(*BROAD_GRANTS)
    from identity import demo
    from identity.tables import User

    with runtime.db.transaction() as session:
        user = demo.create_user_with_grants(session, runtime, name="broad staff", username="broad-staff",
                                            grants=[g for g in BROAD_GRANTS if g[0] != "resident"])
        session.flush()
        token = runtime.extras["keyring"].issue(session, session.get(User, user.id))[0]
    return {"Authorization": f"Bearer {token}"}
