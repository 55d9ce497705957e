"""Every service refuses a disabled account's tokens through the kit's own queue, even a
service that handles identity.user.disabled on a queue of its own (grids, dispatch)."""

import pytest

from gridkit import registry


@pytest.mark.parametrize("name", registry.available())
def test_every_service_keeps_the_kits_accounts_queue(name):
    queues = registry.load(name).subscriptions.queues
    assert "identity.user.disabled.v1" in queues[f"{name}.accounts"].handlers
