"""identity's composition root."""

from __future__ import annotations

from pathlib import Path

from gridkit.auth import TokenVerifier
from gridkit.crypto import DataKey, Sealed
from gridkit.service import Runtime, ServiceSpec

from . import api, codes
from .events import CODE_ISSUED, CODE_PURPOSE, RECIPIENT_PURPOSE, TRANSIT_CONTEXT, catalogue
from .keys import Keyring
from .personal_data import Accounts
from .tables import Base, inbox, outbox


def setup(runtime: Runtime) -> None:
    """Load the data key, make sure a signing key is active, and verify our own tokens
    locally against our own JWKS (no HTTP round trip to ourselves)."""
    settings = runtime.settings
    data_key = DataKey.from_settings(settings)
    keyring = Keyring(runtime.db, data_key, issuer=settings.token_issuer,
                      audience=settings.token_audience)
    keyring.ensure_active()
    runtime.extras.update(data_key=data_key, keyring=keyring)
    codes.setup(runtime)
    runtime.verifier = TokenVerifier.from_jwks(keyring.jwks, issuer=settings.token_issuer,
                                               audience=settings.token_audience)


spec = ServiceSpec(
    name="identity",
    description="People and accounts, credentials, role grants scoped to grids, networks and "
                "departments; access tokens (EdDSA) and their JWKS.",
    base=Base,
    catalogue=catalogue,
    blueprints=lambda: [api.blp],
    migrations=Path(__file__).parent / "migrations",
    port=8001,
    outbox=outbox,
    inbox=inbox,
    setup=setup,
    background=[codes.forget_old_codes],
    personal_data=Accounts(),
    sealed=(
        Sealed("users", "phone_sealed", purpose="phone", index="phone_index"),
        Sealed("users", "national_id_sealed", purpose="national_id", index="national_id_index"),
        Sealed("signing_keys", "private_sealed", purpose="signing-key:{kid}"),
        # The codes asked of notify, sealed with the transit key: in the outbox until
        # published and GRIDGOV_OUTBOX_RETENTION_DAYS after (erasure opens them there).
        *(Sealed("outbox", "body", purpose=purpose, path=f"data.{name}", where={"routing_key": CODE_ISSUED.type},
                 context=TRANSIT_CONTEXT)
          for name, purpose in (("recipient_sealed", RECIPIENT_PURPOSE), ("code_sealed", CODE_PURPOSE))),
    ),
)
