"""gridkit.crypto's keyring: the current data key seals and indexes, previous keys still open."""

from __future__ import annotations

import base64

import pytest

from gridkit.config import Settings
from gridkit.crypto import DataKey, Sealed, Unopenable, new_key

A, B, C = (base64.urlsafe_b64decode(new_key()) for _ in range(3))

# Sealed by the code before key ids (master bytes(range(32)), context identity, purpose phone):
# rows written then must open, and their blind index must not change.
LEGACY_MASTER = bytes(range(32))
LEGACY_TOKEN = "v1:rXs2yBmXajtzXErl7FWHqvMM1mh60Yw159CixpRDnbPubV4v6_oj"
LEGACY_INDEX = "17ef07014aa6665e24d3e74819902a38d6f62d5f5088ff3dff903accf0a61db7"


def test_a_value_sealed_under_the_old_key_opens_once_it_is_previous_and_new_ones_seal_under_the_new():
    old = DataKey(A, "notify").seal("13812345678", "contact.sms")
    ring = DataKey(B, "notify", previous=[A])
    assert ring.open(old, "contact.sms") == "13812345678"
    assert not ring.is_current(old)
    fresh = ring.seal("13812345678", "contact.sms")
    assert ring.is_current(fresh) and fresh.startswith(f"v2:{ring.kid}:")
    assert DataKey(B, "notify").open(fresh, "contact.sms") == "13812345678"


def test_a_value_sealed_under_a_key_no_longer_listed_names_its_key_id():
    old_key = DataKey(A, "intake")
    with pytest.raises(Unopenable, match=f"'{old_key.kid}'.*GRIDGOV_DATA_KEY_PREVIOUS"):
        DataKey(B, "intake", previous=[C]).open(old_key.seal("v", "phone"), "phone")


def test_the_key_id_is_per_service_and_says_nothing_of_the_master():
    assert DataKey(A, "intake").kid != DataKey(A, "notify").kid
    assert DataKey(A, "intake").kid == DataKey(A, "intake", previous=[B]).kid != DataKey(B, "intake").kid
    assert DataKey(A, "intake").kid not in (A.hex(), base64.urlsafe_b64encode(A).decode())


def test_legacy_v1_values_open_under_the_current_key_or_a_previous_one_and_keep_their_index():
    assert DataKey(LEGACY_MASTER, "identity").open(LEGACY_TOKEN, "phone") == "13812345678"
    assert DataKey(B, "identity", previous=[C, LEGACY_MASTER]).open(LEGACY_TOKEN, "phone") == "13812345678"
    assert DataKey(LEGACY_MASTER, "identity").index("13812345678", "phone") == LEGACY_INDEX
    with pytest.raises(Unopenable):
        DataKey(B, "identity", previous=[C]).open(LEGACY_TOKEN, "phone")
    with pytest.raises(Unopenable):
        DataKey(LEGACY_MASTER, "identity").open(LEGACY_TOKEN, "national_id")


def test_the_index_is_the_current_keys_and_indexes_lists_every_key_current_first():
    ring = DataKey(B, "identity", previous=[A])
    assert ring.index("13812345678", "phone") == DataKey(B, "identity").index("13812345678", "phone")
    assert ring.indexes("13812345678", "phone") == [DataKey(B, "identity").index("13812345678", "phone"),
                                                   DataKey(A, "identity").index("13812345678", "phone")]
    assert DataKey(B, "identity", previous=[B]).indexes("x", "phone") == [DataKey(B, "identity").index("x", "phone")]


def test_the_previous_keys_come_from_settings_comma_separated(tmp_path):
    text = {name: base64.urlsafe_b64encode(key).decode() for name, key in (("A", A), ("B", B), ("C", C))}
    settings = Settings(service="notify", database_url="sqlite://", data_dir=tmp_path, data_key=text["C"],
                        data_key_previous=f" {text['A']} ,{text['B']}")
    ring = DataKey.from_settings(settings)
    assert ring.kid == DataKey(C, "notify").kid
    for old in (A, B):
        assert ring.open(DataKey(old, "notify").seal("v", "p"), "p") == "v"
    with pytest.raises(ValueError, match="32 bytes"):
        DataKey.from_settings(Settings(service="notify", database_url="sqlite://", data_dir=tmp_path,
                                       data_key=settings.data_key, data_key_previous="c2hvcnQ="))


@pytest.mark.parametrize("token", ["13812345678", "v9:abc", "v2:nokid", "v1:!!!"])
def test_what_is_not_a_sealed_value_is_unopenable(token):
    with pytest.raises(Unopenable):
        DataKey(A, "intake").open(token, "phone")


def test_a_declaration_names_every_column_it_reads():
    sealed = Sealed("signing_keys", "private_sealed", purpose="signing-key:{kid}")
    assert sealed.columns == ["private_sealed", "kid"] and sealed.label == "signing_keys.private_sealed"
    inside = Sealed("outbox", "body", purpose="p", path="data.x", where={"routing_key": "t"}, index=None)
    assert inside.columns == ["body", "routing_key"] and inside.label == "outbox.body[data.x]"
