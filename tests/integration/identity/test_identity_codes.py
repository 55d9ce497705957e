"""One-time codes by SMS: residents register, log in and reset a forgotten password
themselves; nobody learns from the answers which phones have accounts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import People, ask_code, new_address, new_phone, register, texted_code, texts_to
from sqlalchemy import func, select, text, update

from identity import codes
from identity.service import spec
from identity.tables import CodeRequest, OneTimeCode, RefreshToken, User

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new secret"


@pytest.fixture
def resident(people):
    """A registered resident's phone (password PASSWORD)."""
    def make() -> str:
        phone = new_phone()
        people.add(("resident", "county"), kind="resident", password=PASSWORD, phone=phone)
        return phone
    return make


def without_request_id(response) -> tuple:
    """Everything the caller sees but the request's own id."""
    headers = {k: v for k, v in response.headers.items() if k not in ("X-Request-Id", "Content-Length")}
    body = {k: v for k, v in response.json.items() if k != "request_id"}
    return response.status_code, body, headers


def otp_login(client, phone, code, ip=None):
    return client.post("/tokens", json={"grant_type": "otp", "phone": phone, "code": code},
                       environ_base={"REMOTE_ADDR": ip or new_address()})


def password_login(client, phone, password=PASSWORD):
    return client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": password},
                       environ_base={"REMOTE_ADDR": new_address()})


def reset(client, phone, code, password=NEW_PASSWORD):
    return client.post("/password-reset", json={"phone": phone, "code": code, "password": password})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


# --- no oracle ------------------------------------------------------------------------------

@pytest.mark.parametrize("purpose", ["register", "login", "reset"])
def test_asking_for_a_code_answers_the_same_whether_or_not_the_phone_has_an_account(client, resident, purpose):
    known, unknown = resident(), new_phone()
    for_known, for_unknown = ask_code(client, known, purpose), ask_code(client, unknown, purpose)
    assert for_known.status_code == 202
    assert without_request_id(for_known) == without_request_id(for_unknown)
    assert for_known.json["expires_in"] == 300
    # What differs is only what the phone's owner receives.
    texted = {phone: [(t["message"], bool(t["code"])) for t in texts_to(client, phone)] for phone in (known, unknown)}
    if purpose == "register":
        assert texted == {known: [("account_exists", False)], unknown: [("code", True)]}
    else:
        assert texted == {known: [("code", True)], unknown: []}


def test_the_text_is_in_the_language_asked_for_or_accepted(client):
    chosen, accepted, default = new_phone(), new_phone(), new_phone()
    ask_code(client, chosen, language="en")
    ask_code(client, accepted, headers={"Accept-Language": "en-GB,en;q=0.8"})
    ask_code(client, default)
    assert [texts_to(client, p)[0]["language"] for p in (chosen, accepted, default)] == ["en", "en", "zh-CN"]


def test_a_code_for_an_unknown_phone_fails_exactly_like_a_wrong_code_for_a_known_one(client, resident):
    known, unknown = resident(), new_phone()
    for phone in (known, unknown):
        assert ask_code(client, phone, "login").status_code == 202
        assert ask_code(client, phone, "reset").status_code == 202
    guess = wrong(texted_code(client, known, "login"))
    assert without_request_id(otp_login(client, known, guess)) == without_request_id(otp_login(client, unknown, guess))
    wrong_reset = reset(client, known, wrong(texted_code(client, known, "reset")))
    unknown_reset = reset(client, unknown, "123456")
    assert wrong_reset.status_code == unknown_reset.status_code == 422
    assert without_request_id(wrong_reset) == without_request_id(unknown_reset)
    assert wrong_reset.content_type == "application/problem+json" and "code" in wrong_reset.json["errors"]


# --- codes -----------------------------------------------------------------------------------

def test_codes_are_six_digits_kept_only_as_keyed_hashes(identity, client, resident):
    phone = resident()
    ask_code(client, phone, "login")
    code = texted_code(client, phone, "login")
    assert len(code) == 6 and code.isdigit()
    with identity.db.engine.connect() as conn:
        [row] = conn.execute(text("SELECT * FROM one_time_codes")).mappings().all()
    assert code not in str(dict(row)) and len(row["code_hash"]) == 64


def test_a_resident_logs_in_with_a_code_as_with_a_password(client, resident):
    phone = resident()
    ask_code(client, phone, "login")
    tokens = otp_login(client, phone, texted_code(client, phone, "login"))
    assert tokens.status_code == 200, tokens.json
    assert set(tokens.json) == set(password_login(client, phone).json) == {
        "access_token", "token_type", "expires_in", "refresh_token"}
    me = client.get("/me", headers={"Authorization": f"Bearer {tokens.json['access_token']}"})
    assert me.json["phone"] == phone
    rotated = client.post("/tokens", json={"grant_type": "refresh_token", "refresh_token": tokens.json["refresh_token"]})
    assert rotated.status_code == 200


def test_a_used_code_cannot_be_replayed(client, resident):
    phone = resident()
    ask_code(client, phone, "login")
    code = texted_code(client, phone, "login")
    assert otp_login(client, phone, code).status_code == 200
    replayed = otp_login(client, phone, code)
    assert replayed.status_code == 401 and replayed.content_type == "application/problem+json"


def test_five_wrong_codes_leave_the_right_one_working(client, resident):
    phone = resident()
    ask_code(client, phone, "login")
    code = texted_code(client, phone, "login")
    for _ in range(5):
        assert otp_login(client, phone, wrong(code)).status_code == 401
    assert otp_login(client, phone, code).status_code == 200


def test_the_sixth_wrong_code_locks_the_code_even_for_the_right_one(identity, client, resident):
    phone = resident()
    ask_code(client, phone, "login")
    code = texted_code(client, phone, "login")
    for _ in range(6):
        assert otp_login(client, phone, wrong(code)).status_code == 401
    locked = otp_login(client, phone, code)
    assert locked.status_code == 401
    assert locked.json["detail"] == otp_login(client, phone, wrong(code)).json["detail"]  # no hint it is locked
    # Only a new code helps.
    with identity.db.transaction() as session:
        session.execute(update(CodeRequest).values(requested_at=datetime.now(UTC) - timedelta(minutes=2)))
    ask_code(client, phone, "login")
    assert otp_login(client, phone, texted_code(client, phone, "login")).status_code == 200


def test_concurrent_guesses_never_get_more_than_six_tries(identity, resident):
    phone = resident()
    app = identity.app(testing=True)
    ask_code(app.test_client(), phone, "login")
    code = texted_code(identity, phone, "login")
    statuses: list[int] = []

    def guess():
        statuses.append(otp_login(app.test_client(), phone, wrong(code)).status_code)

    threads = [threading.Thread(target=guess) for _ in range(8)]  # the login throttle allows 10 failures
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [401] * 8
    with identity.db.transaction() as session:
        assert session.scalar(select(OneTimeCode.wrong_attempts)) == 6
    assert otp_login(app.test_client(), phone, code).status_code == 401


def test_an_expired_code_fails(identity, client, resident):
    phone = resident()
    ask_code(client, phone, "login")
    with identity.db.transaction() as session:
        session.execute(update(OneTimeCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert otp_login(client, phone, texted_code(client, phone, "login")).status_code == 401


def test_a_code_works_only_for_its_purpose(client, resident):
    phone = resident()
    ask_code(client, phone, "reset")
    code = texted_code(client, phone, "reset")
    assert otp_login(client, phone, code).status_code == 401
    assert reset(client, phone, code).status_code == 204


def test_a_new_code_replaces_the_previous_one(make_runtime):
    identity = make_runtime(spec, db="postgres", extra={"GRIDGOV_CODE_RESEND_SECONDS": "0"})
    client = identity.app(testing=True).test_client()
    phone = new_phone()
    assert register(client, {"phone": phone, "name": "居民", "password": PASSWORD}).status_code == 201
    ask_code(client, phone, "login")
    first = texted_code(client, phone, "login")
    ask_code(client, phone, "login")
    second = texted_code(client, phone, "login")
    if first != second:  # one chance in a million that they are the same
        assert otp_login(client, phone, first).status_code == 401
    assert otp_login(client, phone, second).status_code == 200


def test_staff_and_disabled_accounts_get_no_code_and_no_tokens(make_runtime):
    identity = make_runtime(spec, db="postgres", extra={"GRIDGOV_CODE_RESEND_SECONDS": "0"})
    client, people = identity.app(testing=True).test_client(), People(identity)
    staff, disabled = new_phone(), new_phone()
    people.add(("grid_worker", "grid:7"), phone=staff, password=PASSWORD)
    user_id = people.add(("resident", "county"), kind="resident", phone=disabled, password=PASSWORD)
    ask_code(client, disabled, "login")
    code = texted_code(client, disabled, "login")
    with identity.db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(disabled=True))
    assert otp_login(client, disabled, code).status_code == 401  # disabled after the code was sent
    for phone in (staff, disabled):
        for purpose in ("login", "reset"):
            assert ask_code(client, phone, purpose).status_code == 202
    assert texted_code(client, staff, "login") is None and texted_code(client, staff, "reset") is None
    assert texted_code(client, disabled, "reset") is None


# --- reset -----------------------------------------------------------------------------------

def test_a_reset_sets_the_password_and_revokes_every_refresh_token(identity, client, resident):
    phone = resident()
    sessions = [password_login(client, phone).json["refresh_token"] for _ in range(2)]
    ask_code(client, phone, "reset")
    assert reset(client, phone, texted_code(client, phone, "reset")).status_code == 204
    for token in sessions:
        assert client.post("/tokens", json={"grant_type": "refresh_token", "refresh_token": token}).status_code == 401
    assert password_login(client, phone).status_code == 401
    assert password_login(client, phone, NEW_PASSWORD).status_code == 200


def test_a_failed_reset_changes_nothing(identity, client, resident):
    phone, unknown = resident(), new_phone()
    token = password_login(client, phone).json["refresh_token"]
    with identity.db.transaction() as session:
        before = session.scalar(select(User.password_hash))
    ask_code(client, phone, "reset")
    ask_code(client, unknown, "reset")
    code = texted_code(client, phone, "reset")
    for phone_, code_ in ((phone, wrong(code)), (unknown, code), (unknown, "000000")):
        assert reset(client, phone_, code_).status_code == 422
    assert reset(client, phone, code, password="short").status_code == 422  # the policy holds, code kept
    with identity.db.transaction() as session:
        assert session.scalar(select(User.password_hash)) == before
        assert session.scalar(select(func.count()).select_from(RefreshToken)
                              .where(RefreshToken.revoked_at.is_not(None))) == 0
        assert session.scalar(select(func.count()).select_from(User)) == 1
    assert password_login(client, phone).status_code == 200
    assert client.post("/tokens", json={"grant_type": "refresh_token", "refresh_token": token}).status_code == 200


# --- registration ----------------------------------------------------------------------------

def test_registration_needs_the_code_texted_to_the_phone(identity, client):
    phone = new_phone()
    body = {"phone": phone, "name": "王居民", "password": PASSWORD}
    assert client.post("/residents", json=body).status_code == 422  # no code at all
    ask_code(client, phone)
    code = texted_code(client, phone, "register")
    refused = client.post("/residents", json=body | {"code": wrong(code)})
    assert refused.status_code == 422 and "code" in refused.json["errors"]
    with identity.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
    assert client.post("/residents", json=body | {"code": code}).status_code == 201
    assert client.post("/residents", json=body | {"code": code}).status_code == 422  # used up


def test_asking_to_register_a_known_phone_makes_no_usable_code(client, resident):
    phone = resident()
    ask_code(client, phone)
    [told] = texts_to(client, phone)
    assert (told["message"], told["code_sealed"]) == ("account_exists", None)
    for guess in ("000000", "123456", "999999"):
        assert client.post("/residents", json={"phone": phone, "code": guess, "name": "冒名",
                                               "password": PASSWORD}).status_code == 422


# --- throttling ------------------------------------------------------------------------------

def test_codes_are_throttled_per_phone(make_runtime):
    identity = make_runtime(spec, db="postgres", extra={"GRIDGOV_CODE_RESEND_SECONDS": "60",
                                                        "GRIDGOV_CODES_PER_PHONE_HOUR": "3"})
    client = identity.app(testing=True).test_client()

    def two_minutes_pass():
        with identity.db.transaction() as session:
            session.execute(update(CodeRequest).values(requested_at=CodeRequest.requested_at - timedelta(minutes=2)))

    phone = new_phone()
    assert ask_code(client, phone, "login").status_code == 202
    again = ask_code(client, phone, "reset")  # another purpose, another address: still this phone
    assert again.status_code == 429 and 1 <= int(again.headers["Retry-After"]) <= 61
    assert again.content_type == "application/problem+json"
    two_minutes_pass()
    assert ask_code(client, phone, "reset").status_code == 202
    two_minutes_pass()
    assert ask_code(client, phone, "login").status_code == 202
    two_minutes_pass()
    hourly = ask_code(client, phone, "login")  # the fourth in an hour
    assert hourly.status_code == 429 and 50 * 60 < int(hourly.headers["Retry-After"]) <= 55 * 60
    assert ask_code(client, new_phone(), "login").status_code == 202  # other phones are not held up


def test_codes_are_throttled_per_client_address(make_runtime):
    identity = make_runtime(spec, db="postgres", extra={"GRIDGOV_CODES_PER_IP_HOUR": "5"})
    client = identity.app(testing=True).test_client()
    for _ in range(5):
        assert ask_code(client, new_phone(), "login", ip="10.7.7.7").status_code == 202
    refused = ask_code(client, new_phone(), "register", ip="10.7.7.7")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert ask_code(client, new_phone(), "login", ip="10.7.7.8").status_code == 202
    with identity.db.transaction() as session:  # refused requests do not extend the wait
        assert session.scalar(select(func.count()).select_from(CodeRequest)
                              .where(CodeRequest.client_ip == "10.7.7.7")) == 5


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(make_runtime):
    identity = make_runtime(spec, db="postgres", trusted_proxies=1, extra={"GRIDGOV_CODES_PER_IP_HOUR": "1"})
    client = identity.app(testing=True).test_client()

    def ask(forwarded):
        return client.post("/codes", json={"phone": new_phone(), "purpose": "login"},
                           headers={"X-Forwarded-For": forwarded}, environ_base={"REMOTE_ADDR": "10.0.0.254"})

    assert ask("203.0.113.1").status_code == 202
    assert ask("203.0.113.2").status_code == 202  # the proxy's own address is not what counts
    assert ask("203.0.113.1").status_code == 429


# --- housekeeping ----------------------------------------------------------------------------

def test_expired_codes_and_old_requests_are_forgotten(identity, client):
    for _ in range(3):
        ask_code(client, new_phone(), "login")
    old = datetime.now(UTC) - timedelta(hours=2)
    with identity.db.transaction() as session:
        session.execute(update(OneTimeCode).where(OneTimeCode.id != select(func.min(OneTimeCode.id))
                                                  .scalar_subquery()).values(expires_at=old))
        session.execute(update(CodeRequest).where(CodeRequest.id != select(func.min(CodeRequest.id))
                                                  .scalar_subquery()).values(requested_at=old))
    stop = threading.Event()
    stop.set()  # one round, then return
    codes.forget_old_codes(identity, stop)
    with identity.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OneTimeCode)) == 1
        assert session.scalar(select(func.count()).select_from(CodeRequest)) == 1
