"""notify on real PostgreSQL, with a real SMTP server (aiosmtpd) and a local SMS gateway."""

from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from gridkit.processes import free_port
from notify.deliveries import Deliverer
from notify.service import spec
from notify.testing import SmsGatewayFake

SMS_KEY = "test-sms-key"


class Mailbox:
    """What the loopback SMTP server received."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailbox.port = controller.port
    yield mailbox
    controller.stop()


@pytest.fixture
def sms_gateway():
    fake = SmsGatewayFake()
    yield fake
    fake.close()


@pytest.fixture
def channel_settings(smtp_server, sms_gateway):
    return {"GRIDGOV_SMTP_HOST": "127.0.0.1", "GRIDGOV_SMTP_PORT": str(smtp_server.port),
            "GRIDGOV_SMTP_FROM": "notify@gridgov.test", "GRIDGOV_SMS_URL": sms_gateway.url,
            "GRIDGOV_SMS_API_KEY": SMS_KEY, "GRIDGOV_SMS_RETRIES": "0",
            "GRIDGOV_NOTIFY_MAX_ATTEMPTS": "3", "GRIDGOV_NOTIFY_RETRY_SECONDS": "0.05"}


@pytest.fixture
def notify_runtime(make_runtime, channel_settings):
    """notify on a fresh PostgreSQL database with email and SMS configured."""
    return make_runtime(spec, db="postgres", extra=channel_settings)


@pytest.fixture
def client(notify_runtime):
    return notify_runtime.app(testing=True).test_client()


@pytest.fixture
def deliverer(notify_runtime):
    deliverer = Deliverer(notify_runtime)
    yield deliverer
    deliverer.close()


@pytest.fixture
def person(tokens, client):
    """A user with a token; ``person()`` makes another."""
    import uuid

    def make(role=("grid_worker", "grid:7"), *, email=None, phone=None, **preferences):
        user_id = str(uuid.uuid4())
        headers = tokens.header(role, sub=user_id)
        if email or phone:
            answer = client.put("/me/contacts", json={"email": email, "phone": phone}, headers=headers)
            assert answer.status_code == 200, answer.json
        if preferences:
            answer = client.put("/me/preferences", json=preferences, headers=headers)
            assert answer.status_code == 200, answer.json
        return user_id, headers

    return make


@pytest.fixture
def person_ids():
    import uuid

    return lambda n: [str(uuid.uuid4()) for _ in range(n)]
