from datetime import UTC, datetime, timedelta

import pytest

from gridkit.auth import Grant, Principal
from gridkit.crypto import Unopenable
from identity import domain
from identity.crypto import DataKey, new_key


def principal(*grants):
    return Principal("someone", "user", tuple(Grant(r, s) for r, s in grants))


def test_phone_is_masked_to_first_three_and_last_four_digits():
    assert domain.mask_phone("13812345678") == "138****5678"


def test_national_id_is_masked_to_first_three_and_last_four_characters():
    assert domain.mask_national_id("11010519491231002X") == "110***********002X"


@pytest.mark.parametrize("number, valid", [
    ("11010519491231002X", True), ("110105194912310021", False), ("1101051949123100", False),
    ("11010519491231002x", False), ("ABCDEFGHIJKLMNOPQR", False)])
def test_national_id_needs_format_and_checksum(number, valid):
    assert domain.valid_national_id(number) is valid


@pytest.mark.parametrize("password", ["short", "12345678901", "aaaaaaaaaaaa", "x" * 129])
def test_weak_passwords_are_refused(password):
    with pytest.raises(domain.RuleBroken):
        domain.check_password(password)


def test_sysadmin_may_grant_anything_and_county_admin_anything_but_sysadmin():
    assert domain.may_grant(principal(("sysadmin", "county")), "sysadmin", "county")
    assert domain.may_grant(principal(("county_admin", "county")), "street_admin", "grid:5")
    assert not domain.may_grant(principal(("county_admin", "county")), "sysadmin", "county")


def test_grid_admins_grant_only_grid_staff_roles_at_exactly_their_own_scope():
    admin = principal(("community_admin", "grid:7"))
    assert domain.may_grant(admin, "grid_worker", "grid:7")
    assert not domain.may_grant(admin, "grid_worker", "grid:8")
    assert not domain.may_grant(admin, "community_admin", "grid:7")
    assert not domain.may_grant(admin, "grid_worker", "county")


def test_nobody_may_grant_an_unknown_role_or_a_malformed_scope():
    root = principal(("sysadmin", "county"))
    assert not domain.may_grant(root, "emperor", "county")
    assert not domain.may_grant(root, "grid_worker", "grid:")


def test_grid_admins_create_only_staff_with_grants_they_could_give():
    admin = principal(("street_admin", "grid:3"))
    assert domain.may_create(admin, "staff", [("grid_worker", "grid:3")])
    assert not domain.may_create(admin, "staff", [])
    assert not domain.may_create(admin, "dept_officer", [("grid_worker", "grid:3")])
    assert not domain.may_create(principal(("grid_head", "grid:3")), "staff", [("grid_worker", "grid:3")])


def test_the_eleventh_failure_in_the_window_is_throttled_until_the_oldest_leaves_it():
    now = datetime.now(UTC)
    attempts = [now - timedelta(minutes=10) + timedelta(seconds=i) for i in range(10)]
    assert domain.retry_after(domain.ACCOUNT_LIMIT, attempts, now) is None
    wait = domain.retry_after(domain.ACCOUNT_LIMIT, attempts + [now], now)
    assert 290 <= wait <= 302


def test_sealed_values_open_only_with_the_same_key_and_purpose():
    key = DataKey(bytes(32))
    sealed = key.seal("13812345678", "phone")
    assert "13812345678" not in sealed
    assert key.open(sealed, "phone") == "13812345678"
    with pytest.raises(Unopenable):
        key.open(sealed, "national_id")
    with pytest.raises(Unopenable):
        DataKey(bytes([1] * 32)).open(sealed, "phone")


def test_blind_index_is_stable_keyed_and_purpose_bound():
    import base64

    key = DataKey(base64.urlsafe_b64decode(new_key()))
    assert key.index("13812345678", "phone") == key.index("13812345678", "phone")
    assert key.index("13812345678", "phone") != key.index("13812345678", "login")
    assert key.index("13812345678", "phone") != DataKey(bytes(32)).index("13812345678", "phone")
