"""The ledger's rules, plain Python: what a transfer request means, what it does to
the two accounts' totals, and when it is refused.

After TigerBeetle's transfer model: every account keeps four totals (debits and
credits, pending and posted); a transfer moves ``amount`` from its debit account to
its credit account, at once (``single``) or in two phases: a ``pending`` transfer
holds the amount (pending totals), and a later ``post`` (of at most the held amount)
or ``void`` releases the hold and, for a post, moves the points. An account flagged
``debits_must_not_exceed_credits`` (a person's, a household's, a supermarket's)
never pays out, or holds, more than it was credited.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta

SINGLE, PENDING, POST, VOID = "single", "pending", "post", "void"
PHASES = (SINGLE, PENDING, POST, VOID)
VOIDED, EXPIRED = "voided", "expired"

PERSON, HOUSEHOLD, ISSUING, SUPERMARKET, EXPIRY = "person", "household", "issuing", "supermarket", "expiry"
ACCOUNT_KINDS = (PERSON, HOUSEHOLD, ISSUING, SUPERMARKET, EXPIRY)
HOLDERS = (PERSON, HOUSEHOLD, SUPERMARKET)  # kinds held by someone: a holder id is required
# Flagged debits_must_not_exceed_credits: they spend what they have. A community's issuing
# pool goes below zero (its balance is minus what it issued); the expiry sink only receives.
LIMITED = (PERSON, HOUSEHOLD, SUPERMARKET)

MAX_AMOUNT = 10**12  # points in one transfer; totals stay far inside a BIGINT
MAX_TOTAL = 2**63 - 1
MAX_TIMEOUT_SECONDS = 90 * 24 * 3600  # a hold lasts at most 90 days


class Refused(Exception):
    """A rule forbids this (HTTP 409). ``type`` names the rule; ``extra`` goes in the problem."""

    def __init__(self, type_: str, reason: str, **extra):
        super().__init__(reason)
        self.type = type_
        self.reason = reason
        self.extra = extra


class Invalid(Exception):
    """A value in the request cannot be used (HTTP 422), naming its field."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


class NotPermitted(Exception):
    """The caller's role and scope do not reach these accounts (HTTP 403)."""

    def __init__(self, reason: str = "your role and scope do not reach these accounts"):
        super().__init__(reason)
        self.reason = reason


def flags_for(kind: str) -> tuple[bool, bool]:
    """(debits_must_not_exceed_credits, credits_must_not_exceed_debits) of a new account."""
    return kind in LIMITED, False


@dataclass(frozen=True)
class Totals:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What may still be paid out or held: the balance less what is held."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def moved(self, *, debits_pending: int = 0, debits_posted: int = 0, credits_pending: int = 0,
              credits_posted: int = 0) -> Totals:
        return replace(self, debits_pending=self.debits_pending + debits_pending,
                       debits_posted=self.debits_posted + debits_posted,
                       credits_pending=self.credits_pending + credits_pending,
                       credits_posted=self.credits_posted + credits_posted)


@dataclass(frozen=True)
class Request:
    """A transfer as a client asks for it (the HTTP body, or a use case's call).

    A new transfer names both accounts, the amount and the code (``pending`` for a
    hold, with an optional timeout); a resolution names the hold in ``post_pending_id``
    or ``void_pending_id`` and may leave out what the hold already says."""

    id: str
    debit_account_id: int | None = None
    credit_account_id: int | None = None
    amount: int | None = None
    code: str | None = None
    pending: bool = False
    timeout_seconds: int | None = None
    post_pending_id: str | None = None
    void_pending_id: str | None = None
    source: str | None = None
    memo: str | None = None

    @property
    def phase(self) -> str:
        if self.post_pending_id:
            return POST
        if self.void_pending_id:
            return VOID
        return PENDING if self.pending else SINGLE

    @property
    def pending_id(self) -> str | None:
        return self.post_pending_id or self.void_pending_id


@dataclass(frozen=True)
class Shape:
    """The fields that make a transfer what it is, compared when its id comes again."""

    phase: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    code: str
    pending_id: str | None
    timeout_seconds: int | None
    source: str | None
    memo: str | None

    def differences(self, other: Shape) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def check_new(request: Request) -> None:
    """What a new (single or pending) transfer must give; Invalid naming the field."""
    for name in ("debit_account_id", "credit_account_id", "amount", "code"):
        if getattr(request, name) is None:
            raise Invalid(name, "required for a new transfer")
    if request.debit_account_id == request.credit_account_id:
        raise Invalid("credit_account_id", "must differ from debit_account_id")
    check_amount(request.amount)
    if request.timeout_seconds is not None and not request.pending:
        raise Invalid("timeout_seconds", "only a pending transfer (a hold) times out")


def check_amount(amount: int | None, field: str = "amount") -> None:
    if amount is not None and (type(amount) is not int or not 0 < amount <= MAX_AMOUNT):
        raise Invalid(field, f"whole points from 1 to {MAX_AMOUNT}")


def new_shape(request: Request) -> Shape:
    assert request.debit_account_id and request.credit_account_id and request.amount and request.code
    return Shape(request.phase, request.debit_account_id, request.credit_account_id, request.amount,
                 request.code, None, request.timeout_seconds if request.pending else None,
                 request.source, request.memo)


def resolution_shape(request: Request, hold: Shape) -> Shape:
    """A post or void of ``hold``: what it leaves out is the hold's; what it gives must
    agree with the hold (a post may take less than was held)."""
    for name in ("debit_account_id", "credit_account_id", "code"):
        given = getattr(request, name)
        if given is not None and given != getattr(hold, name):
            raise Invalid(name, "differs from the pending transfer's")
    if request.pending or request.timeout_seconds is not None:
        raise Invalid("pending", "a post or void is not itself pending")
    check_amount(request.amount)
    amount = hold.amount if request.amount is None else request.amount
    if request.phase == POST and amount > hold.amount:
        raise Invalid("amount", f"a post takes at most the {hold.amount} points held")
    if request.phase == VOID and amount != hold.amount:
        raise Invalid("amount", f"a void releases the {hold.amount} points held, no other amount")
    return Shape(request.phase, hold.debit_account_id, hold.credit_account_id, amount, hold.code,
                 request.pending_id, None, request.source, request.memo)


def expires_at(at: datetime, timeout_seconds: int | None) -> datetime | None:
    return None if timeout_seconds is None else at + timedelta(seconds=timeout_seconds)


def same_or_refused(existing: Shape, asked: Shape, transfer_id: str) -> None:
    """A transfer id comes again: the same transfer is answered with the original, any
    difference is refused (TigerBeetle's "exists with different fields")."""
    different = existing.differences(asked)
    if different:
        raise Refused("exists-with-different-fields",
                      f"transfer {transfer_id} exists with different fields: {', '.join(different)}",
                      fields=different)


def move(phase: str, debit: Totals, credit: Totals, amount: int, held: int = 0) -> tuple[Totals, Totals]:
    """The two accounts' totals after a transfer of ``amount`` (for a post or void,
    ``held`` is what the hold held). Refused when a flagged account would go beyond
    its limit, or a total past what the database holds."""
    if phase == SINGLE:
        debit, credit = debit.moved(debits_posted=amount), credit.moved(credits_posted=amount)
    elif phase == PENDING:
        debit, credit = debit.moved(debits_pending=amount), credit.moved(credits_pending=amount)
    elif phase == POST:
        debit = debit.moved(debits_pending=-held, debits_posted=amount)
        credit = credit.moved(credits_pending=-held, credits_posted=amount)
    elif phase == VOID:
        debit, credit = debit.moved(debits_pending=-held), credit.moved(credits_pending=-held)
    else:
        raise ValueError(phase)
    if debit.debits_must_not_exceed_credits and debit.debits_pending + debit.debits_posted > debit.credits_posted:
        raise Refused("exceeds-credits", "the debit account does not have the points: "
                      f"{debit.available + amount} available, {amount} asked",
                      available=debit.available + amount)
    if credit.credits_must_not_exceed_debits \
            and credit.credits_pending + credit.credits_posted > credit.debits_posted:
        raise Refused("exceeds-debits", "the credit account takes no more than it paid out")
    for totals in (debit, credit):
        if max(totals.debits_pending + totals.debits_posted, totals.credits_pending + totals.credits_posted) \
                > MAX_TOTAL:
            raise Refused("overflows", "an account's totals would overflow")
    return debit, credit
