"""Helpers for tests of identity and of services that need real residents: read the
one-time codes identity asked notify to text, the way the resident's phone would."""

from __future__ import annotations

import itertools
import json

from sqlalchemy import select

from .events import CODE_ISSUED, CODE_PURPOSE, RECIPIENT_PURPOSE
from .tables import outbox

_addresses = itertools.count(1)


def new_address() -> str:
    n = next(_addresses)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


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
