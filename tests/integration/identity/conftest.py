"""identity test helpers: real accounts, real tokens signed by identity's own keys."""

from __future__ import annotations

import itertools

import pytest

from identity import demo
from identity.service import spec
from identity.testing import ask_code, new_address, register, texted_code, texts_to  # noqa: F401 - for the tests

_phones = itertools.count(10_000_000)


def new_phone() -> str:
    return f"139{next(_phones):08d}"


def national_id(body: str = "11010519491231002") -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


class People:
    """Creates accounts directly and signs their tokens with identity's keyring."""

    def __init__(self, runtime):
        self.runtime = runtime

    def add(self, *grants: tuple[str, str], kind: str = "staff", password: str | None = None,
            phone: str | None = None, name: str = "测试用户"):
        with self.runtime.db.transaction() as session:
            user = demo.create_user_with_grants(session, self.runtime, name=name, kind=kind,
                                                phone=phone or new_phone(), grants=grants,
                                                password=password)
            return user.id

    def token(self, user_id: str) -> str:
        from identity.tables import User

        with self.runtime.db.transaction() as session:
            return self.runtime.extras["keyring"].issue(session, session.get(User, user_id))[0]

    def header(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def with_role(self, role: str, scope: str = "county", **kwargs) -> tuple[str, dict[str, str]]:
        kind = "resident" if role == "resident" else "staff"
        user_id = self.add((role, scope), kind=kind, **kwargs)
        return user_id, self.header(user_id)


@pytest.fixture
def identity(make_runtime):
    # No pause between two codes for one phone: tests about it build their own runtime.
    return make_runtime(spec, db="postgres", extra={"GRIDGOV_CODE_RESEND_SECONDS": "0"})


@pytest.fixture
def client(identity):
    return identity.app(testing=True).test_client()


@pytest.fixture
def people(identity):
    return People(identity)
