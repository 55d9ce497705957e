"""Verified tokens are remembered, but never past their expiry or their signing key."""

from __future__ import annotations

import pytest

from gridkit.auth import JwksCache, TokenVerifier
from gridkit.problems import Unauthorized
from gridkit.testkit import Tokens, wait_for


class CountingJwks:
    """identity's JWKS as a function, counting how often a key is looked up."""

    def __init__(self, tokens: Tokens):
        self.keys = tokens.jwks
        self.fetches = 0

    def __call__(self) -> dict:
        self.fetches += 1
        return self.keys


def refused(check: TokenVerifier, token: str) -> bool:
    try:
        check.verify(token)
    except Unauthorized:
        return True
    return False


def verifier(tokens: Tokens, jwks, *, ttl: float = 300, min_refresh: float = 5) -> TokenVerifier:
    return TokenVerifier(JwksCache(jwks, ttl=ttl, min_refresh=min_refresh),
                         issuer=tokens.issuer, audience=tokens.audience, leeway=0)


def test_a_token_is_verified_once_and_then_remembered():
    tokens = Tokens()
    check = verifier(tokens, CountingJwks(tokens))
    token = tokens.issue([("resident", "county")], sub="u-1")
    looked_up = []
    original = check.jwks.key
    check.jwks.key = lambda kid: looked_up.append(kid) or original(kid)  # type: ignore[method-assign]

    first, second = check.verify(token), check.verify(token)

    assert first == second and first.subject == "u-1" and first.has_role("resident")
    assert looked_up == [tokens.kid]  # the second call did not touch the signature


def test_a_remembered_token_still_expires():
    tokens = Tokens()
    check = verifier(tokens, CountingJwks(tokens))
    token = tokens.issue(sub="u-2", ttl=1)
    assert check.verify(token).subject == "u-2"

    wait_for(lambda: refused(check, token), timeout=5, message="the token to expire")
    with pytest.raises(Unauthorized, match="expired"):
        check.verify(token)


def test_a_withdrawn_key_stops_remembered_tokens_when_the_keys_are_next_read():
    tokens = Tokens()
    jwks = CountingJwks(tokens)
    check = verifier(tokens, jwks, ttl=0.3, min_refresh=0)
    token = tokens.issue(sub="u-3")
    assert check.verify(token).subject == "u-3"

    jwks.keys = {"keys": []}  # identity withdrew the key

    wait_for(lambda: refused(check, token), timeout=5, message="the keys to be read again")
    with pytest.raises(Unauthorized, match="unknown signing key"):
        check.verify(token)


def test_a_forged_token_is_never_remembered_as_valid():
    tokens, forger = Tokens(), Tokens()
    forger.kid = tokens.kid  # same key id, different private key
    check = verifier(tokens, CountingJwks(tokens))
    forged = forger.issue([("county_admin", "county")])

    for _ in range(2):
        with pytest.raises(Unauthorized, match="invalid token"):
            check.verify(forged)
