"""Someone leaves: identity disables the account and every staffing term they hold ends,
as an admin ending it would, so every projection of staffing follows."""

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from contracts.identity import USER_DISABLED
from gridkit.events import Envelope
from grids.tables import StaffAssignment, outbox

from .conftest import make_grid


def disabled(registry, user_id: str, at: datetime) -> str:
    """identity.user.disabled handed to the registry's worker as if off the bus."""
    worker = registry.extras.get("feeder") or registry.extras.setdefault("feeder", registry.worker())
    envelope = Envelope.new(USER_DISABLED, {"user_id": user_id, "kind": "staff", "by": "admin-1", "at": at},
                            subject=user_id)
    queue = registry.spec.subscriptions.queues["grids.people"]
    return worker.handle(queue, json.dumps(envelope.to_json()), {}, {})


def unassigned(registry) -> list[dict]:
    t = outbox.table
    with registry.db.sessions() as session:
        return [json.loads(body)["data"] for body in session.scalars(
            select(t.c.body).where(t.c.routing_key == "grids.staff.unassigned.v1").order_by(t.c.id))]


def test_every_term_of_a_disabled_person_ends_with_an_unassigned_event_once(registry, client, admin, community):
    west = make_grid(client, admin, "W", (100.0, 25.0, 100.05, 25.1), division_id=community)["id"]
    east = make_grid(client, admin, "E", (100.05, 25.0, 100.1, 25.1), division_id=community)["id"]
    leaver, colleague = str(uuid.uuid4()), str(uuid.uuid4())
    for grid, user, role in ((west, leaver, "grid_worker"), (east, leaver, "grid_head"),
                             (west, colleague, "grid_worker")):
        assert client.post(f"/grids/{grid}/staff", json={"user_id": user, "role": role},
                           headers=admin).status_code == 201
    ended_earlier = client.get(f"/grids/{west}/staff", headers=admin).json["current"][0]["id"]
    assert client.delete(f"/grids/{west}/staff/{ended_earlier}", headers=admin).status_code == 200
    assert client.post(f"/grids/{west}/staff", json={"user_id": leaver, "role": "grid_worker"},
                       headers=admin).status_code == 201
    before = len(unassigned(registry))
    at = datetime.now(UTC)

    assert disabled(registry, leaver, at) == "processed"

    events = unassigned(registry)[before:]
    assert sorted((e["grid_id"], e["role"]) for e in events) == sorted([(west, "grid_worker"), (east, "grid_head")])
    assert all(e["user_id"] == leaver and datetime.fromisoformat(e["until"]) == at for e in events)
    for grid in (west, east):
        staff = client.get(f"/grids/{grid}/staff", headers=admin).json
        assert leaver not in [s["user_id"] for s in staff["current"]]
    assert [s["user_id"] for s in client.get(f"/grids/{west}/staff", headers=admin).json["current"]] == [colleague]

    # The same fact again (a replay under a new event id) ends nothing more.
    assert disabled(registry, leaver, at) == "processed"
    assert len(unassigned(registry)) == before + 2
    with registry.db.sessions() as session:
        assert session.execute(select(StaffAssignment).where(StaffAssignment.user_id == leaver,
                                                             StaffAssignment.until.is_(None))).first() is None


def test_the_registry_still_refuses_a_disabled_accounts_tokens_through_the_kit(registry):
    # grids handles identity.user.disabled on its own queue too; the kit's queue stays subscribed.
    queues = registry.spec.subscriptions.queues
    assert "identity.user.disabled.v1" in queues["grids.accounts"].handlers
    assert "identity.user.disabled.v1" in queues["grids.people"].handlers
