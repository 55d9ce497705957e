"""identity test helpers: real accounts, real tokens signed by identity's own keys."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import select

from identity import demo
from identity.events import CODE_ISSUED, CODE_PURPOSE, RECIPIENT_PURPOSE
from identity.service import spec
from identity.tables import outbox

_phones = itertools.count(10_000_000)
_addresses = itertools.count(1)


def new_phone() -> str:
    return f"139{next(_phones):08d}"


def national_id(body: str = "11010519491231002") -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def new_address() -> str:
    n = next(_addresses)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


# --- one-time codes, read the way the resident's phone would: from what identity asked notify to text

def ask_code(client, phone: str, purpose: str = "register", *, ip: str | None = None,
             headers: dict | None = None, **body):
    """POST /codes from ``ip`` (by default a fresh address, so per-address throttling stays out
    of tests that are not about it)."""
    return client.post("/codes", json={"phone": phone, "purpose": purpose} | body, headers=headers or {},
                       environ_base={"REMOTE_ADDR": ip or new_address()})


def texts_to(client_or_runtime, phone: str) -> list[dict]:
    """Every identity.code.issued for ``phone`` so far, oldest first, its code opened (or None)."""
    runtime = getattr(client_or_runtime, "application", None)
    runtime = runtime.extensions["gridgov"] if runtime else client_or_runtime
    transit = runtime.extras["transit_key"]
    table = outbox.table
    with runtime.db.engine.connect() as conn:
        bodies = conn.execute(select(table.c.body).where(table.c.routing_key == CODE_ISSUED.type)
                              .order_by(table.c.id)).scalars().all()
    texts = []
    for body in bodies:
        data = json.loads(body)["data"]
        if transit.open(data["recipient_sealed"], RECIPIENT_PURPOSE) == phone:
            code = transit.open(data["code_sealed"], CODE_PURPOSE) if data["code_sealed"] else None
            texts.append(data | {"code": code})
    return texts


def texted_code(client_or_runtime, phone: str, purpose: str) -> str | None:
    """The newest code texted to ``phone`` for ``purpose``."""
    codes = [t["code"] for t in texts_to(client_or_runtime, phone) if t["purpose"] == purpose and t["code"]]
    return codes[-1] if codes else None


def register(client, body: dict, headers: dict | None = None):
    """POST /residents the way a resident does it: ask for a code, read it, register with it."""
    answer = ask_code(client, body["phone"], headers=headers)
    assert answer.status_code == 202, answer.json
    return client.post("/residents", json=body | {"code": texted_code(client, body["phone"], "register")},
                       headers=headers or {})


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
