"""Aggregates of the ledger and their events.

Four aggregates, each with a deterministic id derived from its natural key, so that
recording the same thing twice collides on the event store's unique key:

* :class:`Household` -- a registered household and its members;
* :class:`Standard` -- the local monthly standard of one programme in one area;
* :class:`Case` -- one application and its whole life (verifications, decisions,
  suspensions, a temporary grant);
* :class:`Payment` -- one issue of one case's payment for one benefit month.

Every event carries the ``operator`` who recorded it and the ``effective`` date it
takes effect; the event store adds the recorded time (``timestamp``).

Public command methods validate and then trigger an event; the private ``@event``
methods only assign state, because they run again on every replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha1
from datetime import date
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from ledger.errors import (
    AmountAboveStandard,
    CaseNotActive,
    DuplicatePayment,
    FourEyesViolation,
    InvalidInput,
    InvalidTransition,
    OverrideRequired,
    VerificationRequired,
)
from ledger.values import MAX_FEN, Area, Channel, Month, Programme, mask_id, yuan

NAMESPACE = uuid5(NAMESPACE_URL, "https://ledger.local/social-assistance")

#: A temporary grant above this many monthly dibao standards needs an override reason.
GRANT_OVERRIDE_MULTIPLE = 10


def ordered_id(prefix: bytes, name: str) -> UUID:
    """A deterministic id that sorts by ``prefix`` (at most six bytes), then by a hash of ``name``.

    The rest of the id is the SHA-1 name hash of a version 5 id (74 to 90 of its bits), and
    the id is marked version 8 (RFC 9562, a custom layout). Ids made in the order their
    prefixes sort are added next to each other in the event store's index on aggregate id,
    instead of at random places of the whole index (decision 0025).
    """
    digest = sha1(NAMESPACE.bytes + name.encode("utf-8", "surrogatepass")).digest()
    b = bytearray(prefix + digest[: 16 - len(prefix)])
    b[6] = (b[6] & 0x0F) | 0x80  # version 8
    b[8] = (b[8] & 0x3F) | 0x80  # the RFC variant
    return UUID(bytes=bytes(b))


def _number_prefix(number: str) -> bytes:
    """The first six bytes of a number as text: numbers given out in order sort in that order."""
    return number.encode("utf-8", "surrogatepass")[:6].ljust(6, b"\0")


@lru_cache(maxsize=1 << 16)
def household_id(number: str) -> UUID:
    """Number first (decision 0025): households registered in number order sit together in the index."""
    return ordered_id(_number_prefix(number), f"household:{number}")


@lru_cache(maxsize=1 << 16)
def case_id(case_no: str) -> UUID:
    """Case number first (decision 0025), as :func:`household_id`."""
    return ordered_id(_number_prefix(case_no), f"case:{case_no}")


@lru_cache(maxsize=64)
def standard_id(programme: Programme, area: Area) -> UUID:
    """Cached: every verification and decision looks its standard up, and there are only a few."""
    return uuid5(NAMESPACE, f"standard:{programme.value}:{area.value}")


def payment_ref(case_no: str, month: Month, issue_no: int) -> str:
    """The human payment reference, e.g. ``P-U0001-202301-1`` (case, month, issue number)."""
    return f"P-{case_no}-{month.year:04d}{month.month:02d}-{issue_no}"


@lru_cache(maxsize=1 << 16)
def payment_id(case_no: str, month: Month, issue_no: int) -> UUID:
    """Deterministic: a second issue with the same number collides in the event store.

    Month first (decision 0025): the payments of a month sort together in the event
    store's index on aggregate id, so a payroll adds to one end of it.
    """
    return ordered_id(month.index.to_bytes(4, "big"), f"payment:{case_no}:{month}:{issue_no}")


def check_first_issue(case_no: str, programme: Programme, month: Month, amount_fen: int, persons: int) -> None:
    """What a month's plain first issue to a case must be (:meth:`Payment.first_issue_event`, :mod:`ledger.issues`)."""
    if not programme.is_monthly:
        raise InvalidInput(f"case {case_no} is {programme.value}; it is not paid monthly")
    check_fen(amount_fen, f"the payment of case {case_no} for {month}")
    if persons < 1:
        raise InvalidInput(f"case {case_no} covers no person in {month}; no payment")


def check_fen(amount_fen: int, what: str) -> None:
    """Amounts are positive integer fen no larger than :data:`ledger.values.MAX_FEN`."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
        raise InvalidInput(f"{what} must be an integer number of fen")
    if not 0 < amount_fen <= MAX_FEN:
        raise InvalidInput(f"{what} must be positive and at most {yuan(MAX_FEN)} yuan")


class LedgerAggregate(Aggregate):
    """Base of the ledger's aggregates: every event says who recorded it and when it takes effect."""

    class Event(Aggregate.Event):
        operator: str
        effective: date


# --------------------------------------------------------------------------- households


class Household(LedgerAggregate):
    """A registered household, its members and the bank account its benefits are paid into."""

    class Registered(Aggregate.Created, LedgerAggregate.Event):
        number: str
        community: str
        area: Area
        members: list[dict[str, Any]]
        payee_name: str
        payee_account: str

    class MemberAdded(LedgerAggregate.Event):
        member: dict[str, Any]

    class MemberRemoved(LedgerAggregate.Event):
        id_number: str
        reason: str

    class MemberDeceased(LedgerAggregate.Event):
        id_number: str

    class AreaChanged(LedgerAggregate.Event):
        area: Area

    class AccountChanged(LedgerAggregate.Event):
        payee_name: str
        payee_account: str

    @staticmethod
    def create_id(number: str, **_: Any) -> UUID:
        return household_id(number)

    @classmethod
    def register(
        cls,
        *,
        number: str,
        community: str,
        area: Area,
        members: list[dict[str, Any]],
        payee_account: str,
        payee_name: str | None,
        operator: str,
        effective: date,
    ) -> Household:
        if not number.strip():
            raise InvalidInput("household number is empty")
        if not members:
            raise InvalidInput(f"household {number} has no members")
        ids = [m["id_number"] for m in members]
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"household {number} lists the same identity number twice")
        heads = [m for m in members if m["relation"] == "head"]
        if len(heads) != 1:
            raise InvalidInput(f"household {number} must have exactly one member with relation 'head'")
        return cls(
            number=number,
            community=community,
            area=area,
            members=members,
            payee_name=payee_name or heads[0]["name"],
            payee_account=payee_account,
            operator=operator,
            effective=effective,
        )

    @event(Registered)
    def __init__(
        self,
        number: str,
        community: str,
        area: Area,
        members: list[dict[str, Any]],
        payee_name: str,
        payee_account: str,
        operator: str,
        effective: date,
    ) -> None:
        self.number = number
        self.community = community
        self.area = area
        self.members: dict[str, dict[str, Any]] = {}
        for m in members:
            self.members[m["id_number"]] = dict(m, status="present", since=effective.isoformat())
        self.payee_name = payee_name
        self.payee_account = payee_account
        self.registered_on = effective

    # queries ------------------------------------------------------------
    def member(self, id_number: str) -> dict[str, Any]:
        try:
            return self.members[id_number]
        except KeyError:
            raise InvalidInput(
                f"household {self.number} has no member with identity number {mask_id(id_number)}"
            ) from None

    def living_members(self) -> list[str]:
        """Identity numbers of members present and alive."""
        return [i for i, m in self.members.items() if m["status"] == "present"]

    # commands -----------------------------------------------------------
    def add_member(self, member: dict[str, Any], *, operator: str, effective: date) -> None:
        if member["id_number"] in self.members and self.members[member["id_number"]]["status"] == "present":
            raise InvalidInput(
                f"household {self.number} already has member {mask_id(member['id_number'])}"
            )
        if member["relation"] == "head":
            raise InvalidInput("a household has one head; add the new member with another relation")
        self._member_added(member=member, operator=operator, effective=effective)

    def remove_member(self, id_number: str, reason: str, *, operator: str, effective: date) -> None:
        m = self.member(id_number)
        if m["status"] != "present":
            raise InvalidTransition(f"member {mask_id(id_number)} of household {self.number} is already {m['status']}")
        if not reason.strip():
            raise InvalidInput("a reason is required to remove a member")
        self._member_removed(id_number=id_number, reason=reason, operator=operator, effective=effective)

    def record_death(self, id_number: str, *, operator: str, effective: date) -> None:
        m = self.member(id_number)
        if m["status"] == "deceased":
            raise InvalidTransition(f"member {mask_id(id_number)} of household {self.number} is already recorded as deceased")
        self._member_deceased(id_number=id_number, operator=operator, effective=effective)

    def move(self, area: Area, *, operator: str, effective: date) -> None:
        if area is self.area:
            raise InvalidTransition(f"household {self.number} is already {area.value}")
        self._area_changed(area=area, operator=operator, effective=effective)

    def change_account(self, payee_name: str, payee_account: str, *, operator: str, effective: date) -> None:
        if not payee_account.strip() or not payee_name.strip():
            raise InvalidInput("payee name and account are required")
        self._account_changed(
            payee_name=payee_name, payee_account=payee_account, operator=operator, effective=effective
        )

    @event(MemberAdded)
    def _member_added(self, member: dict[str, Any], operator: str, effective: date) -> None:
        self.members[member["id_number"]] = dict(member, status="present", since=effective.isoformat())

    @event(MemberRemoved)
    def _member_removed(self, id_number: str, reason: str, operator: str, effective: date) -> None:
        self.members[id_number] = dict(self.members[id_number], status="removed", until=effective.isoformat())

    @event(MemberDeceased)
    def _member_deceased(self, id_number: str, operator: str, effective: date) -> None:
        self.members[id_number] = dict(self.members[id_number], status="deceased", until=effective.isoformat())

    @event(AreaChanged)
    def _area_changed(self, area: Area, operator: str, effective: date) -> None:
        self.area = area

    @event(AccountChanged)
    def _account_changed(self, payee_name: str, payee_account: str, operator: str, effective: date) -> None:
        self.payee_name = payee_name
        self.payee_account = payee_account


# --------------------------------------------------------------------------- standards


class Standard(LedgerAggregate):
    """The local monthly standard (per person) of one programme in one area, with its history."""

    class Created(Aggregate.Created, LedgerAggregate.Event):
        programme: Programme
        area: Area

    class Set(LedgerAggregate.Event):
        programme: Programme
        area: Area
        amount_fen: int
        from_month: Month

    @event(Created)
    def __init__(self, programme: Programme, area: Area, operator: str, effective: date) -> None:
        self.programme = programme
        self.area = area
        self.history: list[tuple[Month, int]] = []

    @staticmethod
    def create_id(programme: Programme, area: Area, **_: Any) -> UUID:
        return standard_id(programme, area)

    def set(self, amount_fen: int, from_month: Month, *, operator: str, effective: date) -> None:
        check_fen(amount_fen, "a standard")
        self._set(
            programme=self.programme,
            area=self.area,
            amount_fen=amount_fen,
            from_month=from_month,
            operator=operator,
            effective=effective,
        )

    @event(Set)
    def _set(
        self, programme: Programme, area: Area, amount_fen: int, from_month: Month, operator: str, effective: date
    ) -> None:
        # A later setting for the same month replaces the earlier one; both stay in the log.
        self.history = [h for h in self.history if h[0] != from_month] + [(from_month, amount_fen)]
        self.history.sort()

    def in_force(self, month: Month) -> int | None:
        """The standard in force in ``month`` (fen per person), or None if none was set yet."""
        amount = None
        for start, fen in self.history:
            if start <= month:
                amount = fen
        return amount


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Verification:
    """A recorded means-test verification of a case."""

    no: int
    seq: int
    income_fen: int
    assets_ok: bool
    standard_fen: int | None
    passed: bool
    verifier: str
    recorded_by: str
    verified_on: date
    valid_until: date


@dataclass(frozen=True)
class Change:
    """A decision that takes effect from a benefit month (approval, adjustment, suspension...)."""

    from_month: Month
    seq: int
    kind: str
    amount_fen: int = 0
    covered: tuple[str, ...] = ()


@dataclass(frozen=True)
class Period:
    """A stretch of benefit months with one status, amount and set of covered persons."""

    from_month: Month
    to_month: Month | None  # exclusive; None = open-ended
    status: str
    amount_fen: int
    covered: tuple[str, ...]


def fold_periods(changes: list[Change]) -> list[Period]:
    """Fold a case's decisions into periods.

    A decision takes effect from its month on. In any month, the amount (and persons)
    come from the latest-recorded approval or adjustment in force by then, and the
    status from the latest-recorded approval, suspension or resumption in force by
    then; so a decision recorded late (retroactively) overrides, from its month on,
    what was decided before it was recorded. A termination is final. The read models
    fold with this same function so both sides agree by construction.
    """
    by_record = sorted(changes, key=lambda c: c.seq)
    end = min((c.from_month for c in changes if c.kind == "terminated"), default=None)

    def state_at(month: Month) -> tuple[str | None, int, tuple[str, ...]]:
        status: str | None = None
        amount, covered = 0, ()
        for ch in by_record:
            if ch.from_month > month:
                continue
            if ch.kind in ("approved", "adjusted"):
                amount, covered = ch.amount_fen, ch.covered
            if ch.kind == "approved" or (ch.kind == "resumed" and status is not None):
                status = "active"
            elif ch.kind == "suspended" and status is not None:
                status = "suspended"
        if end is not None and month >= end and status is not None:
            status = "terminated"
        return status, amount, covered

    out: list[Period] = []
    for month in sorted({c.from_month for c in changes}):
        status, amount, covered = state_at(month)
        if status is None:
            continue
        if out and (out[-1].status, out[-1].amount_fen, out[-1].covered) == (status, amount, covered):
            continue
        out.append(Period(month, None, status, amount, covered))
        if status == "terminated":
            break
    return [
        Period(p.from_month, out[i + 1].from_month if i + 1 < len(out) else None, p.status, p.amount_fen, p.covered)
        for i, p in enumerate(out)
    ]


class Case(LedgerAggregate):
    """One application for assistance and the whole life of the case that follows it."""

    class Applied(Aggregate.Created, LedgerAggregate.Event):
        case_no: str
        household_no: str
        programme: Programme
        area: Area
        channel: Channel
        single_person: str | None

    class Verified(LedgerAggregate.Event):
        income_fen: int
        assets_ok: bool
        standard_fen: int | None
        passed: bool
        verifier: str
        valid_until: date

    class Approved(LedgerAggregate.Event):
        amount_fen: int
        covered: list[str]
        first_month: Month
        add_on_fen: int
        add_on_reason: str
        standard_fen: int
        verification_no: int

    class LegacyApproved(LedgerAggregate.Event):
        """An approval carried over from a legacy system as it stood there, without the ledger's checks."""

        amount_fen: int
        covered: list[str]
        first_month: Month
        approver: str
        verification_no: int
        legacy_reference: str

    class Rejected(LedgerAggregate.Event):
        reason: str

    class AmountAdjusted(LedgerAggregate.Event):
        amount_fen: int
        covered: list[str]
        from_month: Month
        add_on_fen: int
        add_on_reason: str
        standard_fen: int
        verification_no: int

    class Suspended(LedgerAggregate.Event):
        reason: str
        from_month: Month

    class Resumed(LedgerAggregate.Event):
        from_month: Month

    class Terminated(LedgerAggregate.Event):
        reason: str
        from_month: Month

    class GrantApproved(LedgerAggregate.Event):
        grant_type: str
        amount_fen: int
        reason: str
        override_reason: str
        standard_fen: int
        verification_no: int

    class GrantPaid(LedgerAggregate.Event):
        payee_name: str
        payee_account: str

    class OverpaymentEstablished(LedgerAggregate.Event):
        month: Month
        amount_fen: int
        cause: str

    class OverpaymentCancelled(LedgerAggregate.Event):
        month: Month
        amount_fen: int
        cause: str

    class OverpaymentRecovered(LedgerAggregate.Event):
        amount_fen: int
        method: str
        reference: str

    class RecoveryReversed(LedgerAggregate.Event):
        amount_fen: int
        reference: str

    @staticmethod
    def create_id(case_no: str, **_: Any) -> UUID:
        return case_id(case_no)

    @event(Applied)
    def __init__(
        self,
        case_no: str,
        household_no: str,
        programme: Programme,
        area: Area,
        channel: Channel,
        single_person: str | None,
        operator: str,
        effective: date,
    ) -> None:
        self.case_no = case_no
        self.household_no = household_no
        self.programme = programme
        self.area = area
        self.channel = channel
        self.single_person = single_person
        self.applied_on = effective
        self.status = "applied"
        self.verifications: list[Verification] = []
        self.changes: list[Change] = []
        self.first_month: Month | None = None
        self.amount_fen = 0
        self.covered: tuple[str, ...] = ()
        self.persons_at_approval = 0
        self.last_decision_seq = 0
        self.grant: dict[str, Any] | None = None
        self.reason = ""
        self.overpaid: dict[Month, int] = {}
        self.recovered_fen = 0
        self.refunded_fen = 0
        self.offsets: dict[str, int] = {}  # payment reference -> debt it is recovering

    # ------------------------------------------------------------------ queries
    @property
    def is_monthly(self) -> bool:
        return self.programme.is_monthly

    def periods(self) -> list[Period]:
        """The case's benefit months folded from its decisions (see :func:`fold_periods`).

        Decisions are only ever appended, so their count keys the cached fold.
        """
        cached = self.__dict__.get("_periods")
        if cached is None or cached[0] != len(self.changes):
            cached = (len(self.changes), fold_periods(self.changes))
            self.__dict__["_periods"] = cached
        return cached[1]

    def period_at(self, month: Month) -> Period | None:
        for p in self.periods():
            if p.from_month <= month and (p.to_month is None or month < p.to_month):
                return p
        return None

    def status_at(self, month: Month) -> str:
        p = self.period_at(month)
        if p is None:
            return self.status if self.status in ("applied", "rejected") else "not yet active"
        return p.status

    def valid_verification(self, on: date, after_seq: int = 0) -> Verification:
        """The latest verification recorded after ``after_seq``; it must have passed and be valid on ``on``."""
        candidates = [v for v in self.verifications if v.seq > after_seq and v.verified_on <= on]
        if not candidates:
            what = "a new verification" if after_seq else "a verification"
            raise VerificationRequired(
                f"case {self.case_no} needs {what} recorded before this decision (verify before every grant)"
            )
        v = candidates[-1]
        if not v.passed:
            raise VerificationRequired(
                f"case {self.case_no}: the latest verification (no. {v.no}) did not pass; "
                "it cannot support this decision"
            )
        if v.valid_until < on:
            raise VerificationRequired(
                f"case {self.case_no}: verification no. {v.no} expired on {v.valid_until}; verify again"
            )
        return v

    @staticmethod
    def _four_eyes(case_no: str, v: Verification, operator: str) -> None:
        # Both the verifier named and the operator who recorded the verification are excluded:
        # a clerk cannot approve on a verification they entered under someone else's name.
        if operator in (v.verifier, v.recorded_by):
            raise FourEyesViolation(
                f"case {case_no}: {operator} verified this case (verification no. {v.no}) "
                "and cannot also approve it; another operator must decide"
            )

    def _check_amount(
        self, amount_fen: int, persons: int, standard_fen: int | None, add_on_fen: int, month: Month
    ) -> int:
        check_fen(amount_fen, "the monthly amount")
        if add_on_fen:
            check_fen(add_on_fen, "an add-on")
        if standard_fen is None:
            raise AmountAboveStandard(
                f"no {self.programme.value} standard for {self.area.value} areas is in force in {month}; set one first"
            )
        ceiling = standard_fen * persons + add_on_fen
        if amount_fen > ceiling:
            raise AmountAboveStandard(
                f"case {self.case_no}: {yuan(amount_fen)} yuan a month is above the ceiling of "
                f"{yuan(ceiling)} yuan (standard {yuan(standard_fen)} x {persons} persons"
                + (f" + add-on {yuan(add_on_fen)}" if add_on_fen else "")
                + f" in {month})"
            )
        return standard_fen

    def _require_status(self, allowed: tuple[str, ...], doing: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"case {self.case_no} is {self.status}; cannot {doing}")

    def _require_monthly(self, doing: str) -> None:
        if not self.is_monthly:
            raise InvalidTransition(f"case {self.case_no} is temporary assistance; cannot {doing}")

    # ------------------------------------------------------------------ commands
    def verify(
        self,
        *,
        income_fen: int,
        assets_ok: bool,
        standard_fen: int | None,
        verifier: str,
        valid_until: date,
        operator: str,
        effective: date,
    ) -> None:
        self._require_status(("applied", "active", "suspended"), "record a verification")
        if income_fen < 0 or income_fen > MAX_FEN:
            raise InvalidInput(f"per-capita income must be between 0 and {yuan(MAX_FEN)} yuan")
        if valid_until < effective:
            raise InvalidInput(f"a verification valid until {valid_until} would expire before it was made ({effective})")
        if not verifier.strip():
            raise InvalidInput("the verifier is required")
        # Dibao is a gap top-up: the household qualifies if its per-capita income is below
        # the local standard and its assets are within limits. For tekun and temporary
        # assistance the means test is the asset test; income is recorded for the file.
        passed = assets_ok and (not self.programme.is_dibao or (standard_fen is not None and income_fen < standard_fen))
        self._verified(
            income_fen=income_fen,
            assets_ok=assets_ok,
            standard_fen=standard_fen,
            passed=passed,
            verifier=verifier,
            valid_until=valid_until,
            operator=operator,
            effective=effective,
        )

    @event(Verified)
    def _verified(
        self,
        income_fen: int,
        assets_ok: bool,
        standard_fen: int | None,
        passed: bool,
        verifier: str,
        valid_until: date,
        operator: str,
        effective: date,
    ) -> None:
        self.verifications.append(
            Verification(
                no=len(self.verifications) + 1,
                seq=self.version,
                income_fen=income_fen,
                assets_ok=assets_ok,
                standard_fen=standard_fen,
                passed=passed,
                verifier=verifier,
                recorded_by=operator,
                verified_on=effective,
                valid_until=valid_until,
            )
        )

    def approve(
        self,
        *,
        amount_fen: int,
        covered: list[str],
        first_month: Month,
        standard_fen: int | None,
        add_on_fen: int = 0,
        add_on_reason: str = "",
        operator: str,
        effective: date,
    ) -> None:
        self._require_monthly("approve a monthly amount (use grant approve)")
        self._require_status(("applied",), "approve")
        if not covered:
            raise InvalidInput(f"case {self.case_no}: an approval must cover at least one person")
        if self.single_person and list(covered) != [self.single_person]:
            raise InvalidInput(
                f"case {self.case_no} is a single-person inclusion; it covers {mask_id(self.single_person)} only"
            )
        if first_month < Month.of(self.applied_on):
            raise InvalidInput(
                f"case {self.case_no}: first benefit month {first_month} is before the application ({self.applied_on})"
            )
        if add_on_fen and not add_on_reason.strip():
            raise InvalidInput("an add-on needs a documented reason (--add-on-reason)")
        v = self.valid_verification(effective)
        self._four_eyes(self.case_no, v, operator)
        std = self._check_amount(amount_fen, len(covered), standard_fen, add_on_fen, first_month)
        self._approved(
            amount_fen=amount_fen,
            covered=list(covered),
            first_month=first_month,
            add_on_fen=add_on_fen,
            add_on_reason=add_on_reason,
            standard_fen=std,
            verification_no=v.no,
            operator=operator,
            effective=effective,
        )

    @event(Approved)
    def _approved(
        self,
        amount_fen: int,
        covered: list[str],
        first_month: Month,
        add_on_fen: int,
        add_on_reason: str,
        standard_fen: int,
        verification_no: int,
        operator: str,
        effective: date,
    ) -> None:
        self._start(first_month, amount_fen, covered)

    def approve_legacy(
        self,
        *,
        amount_fen: int,
        covered: list[str],
        first_month: Month,
        approver: str,
        legacy_reference: str,
        operator: str,
        effective: date,
    ) -> None:
        """Carry over an approval from a legacy system as it was recorded there.

        The ledger records history it did not decide: the verification rules, the four
        eyes and the standard are not enforced here, but the approval names its legacy
        reference and the approver of the old system, and ``ledger audit check`` reports
        whatever it would have refused.
        """
        self._require_monthly("carry over a monthly approval")
        self._require_status(("applied",), "approve")
        check_fen(amount_fen, "the monthly amount")
        if not covered:
            raise InvalidInput(f"case {self.case_no}: an approval must cover at least one person")
        if not legacy_reference.strip() or not approver.strip():
            raise InvalidInput("a legacy approval needs the legacy system's reference and approver")
        latest = self.verifications[-1].no if self.verifications else 0
        self._legacy_approved(
            amount_fen=amount_fen,
            covered=list(covered),
            first_month=first_month,
            approver=approver,
            verification_no=latest,
            legacy_reference=legacy_reference,
            operator=operator,
            effective=effective,
        )

    @event(LegacyApproved)
    def _legacy_approved(
        self,
        amount_fen: int,
        covered: list[str],
        first_month: Month,
        approver: str,
        verification_no: int,
        legacy_reference: str,
        operator: str,
        effective: date,
    ) -> None:
        self._start(first_month, amount_fen, covered)

    def _start(self, first_month: Month, amount_fen: int, covered: list[str]) -> None:
        """The state an approval (ledger or legacy) leaves: active from its first month."""
        self.status = "active"
        self.first_month = first_month
        self.amount_fen = amount_fen
        self.covered = tuple(covered)
        self.persons_at_approval = len(covered)
        self.last_decision_seq = self.version
        self.changes.append(Change(first_month, self.version, "approved", amount_fen, tuple(covered)))

    def reject(self, reason: str, *, operator: str, effective: date) -> None:
        self._require_status(("applied",), "reject")
        if not reason.strip():
            raise InvalidInput("a rejection needs a reason")
        self._rejected(reason=reason, operator=operator, effective=effective)

    @event(Rejected)
    def _rejected(self, reason: str, operator: str, effective: date) -> None:
        self.status = "rejected"
        self.reason = reason

    def adjust(
        self,
        *,
        amount_fen: int,
        covered: list[str],
        from_month: Month,
        standard_fen: int | None,
        add_on_fen: int = 0,
        add_on_reason: str = "",
        operator: str,
        effective: date,
    ) -> None:
        self._require_monthly("adjust a monthly amount")
        self._require_status(("active", "suspended"), "adjust the amount")
        assert self.first_month is not None
        if from_month < self.first_month:
            raise InvalidInput(f"case {self.case_no}: {from_month} is before the first benefit month {self.first_month}")
        if not covered:
            raise InvalidInput(f"case {self.case_no}: an adjustment must cover at least one person")
        if self.single_person and list(covered) != [self.single_person]:
            raise InvalidInput(
                f"case {self.case_no} is a single-person inclusion; it covers {mask_id(self.single_person)} only"
            )
        if add_on_fen and not add_on_reason.strip():
            raise InvalidInput("an add-on needs a documented reason (--add-on-reason)")
        if amount_fen == self.amount_fen and tuple(covered) == self.covered:
            raise InvalidInput(f"case {self.case_no} already receives {yuan(amount_fen)} yuan for these persons")
        v = self.valid_verification(effective, after_seq=self.last_decision_seq)
        self._four_eyes(self.case_no, v, operator)
        std = self._check_amount(amount_fen, len(covered), standard_fen, add_on_fen, from_month)
        self._adjusted(
            amount_fen=amount_fen,
            covered=list(covered),
            from_month=from_month,
            add_on_fen=add_on_fen,
            add_on_reason=add_on_reason,
            standard_fen=std,
            verification_no=v.no,
            operator=operator,
            effective=effective,
        )

    @event(AmountAdjusted)
    def _adjusted(
        self,
        amount_fen: int,
        covered: list[str],
        from_month: Month,
        add_on_fen: int,
        add_on_reason: str,
        standard_fen: int,
        verification_no: int,
        operator: str,
        effective: date,
    ) -> None:
        self.amount_fen = amount_fen
        self.covered = tuple(covered)
        self.last_decision_seq = self.version
        self.changes.append(Change(from_month, self.version, "adjusted", amount_fen, tuple(covered)))

    def suspend(self, reason: str, from_month: Month, *, operator: str, effective: date) -> None:
        self._require_monthly("suspend")
        self._require_status(("active",), "suspend")
        assert self.first_month is not None
        if not reason.strip():
            raise InvalidInput("a suspension needs a reason")
        if from_month < self.first_month:
            raise InvalidInput(f"case {self.case_no}: {from_month} is before the first benefit month {self.first_month}")
        self._suspended(reason=reason, from_month=from_month, operator=operator, effective=effective)

    @event(Suspended)
    def _suspended(self, reason: str, from_month: Month, operator: str, effective: date) -> None:
        self.status = "suspended"
        self.reason = reason
        self.suspended_from = from_month
        self.changes.append(Change(from_month, self.version, "suspended"))

    def resume(self, from_month: Month, *, operator: str, effective: date) -> None:
        self._require_monthly("resume")
        self._require_status(("suspended",), "resume")
        if from_month <= self.suspended_from:
            raise InvalidInput(
                f"case {self.case_no} is suspended from {self.suspended_from}; resume from a later month"
            )
        self._resumed(from_month=from_month, operator=operator, effective=effective)

    @event(Resumed)
    def _resumed(self, from_month: Month, operator: str, effective: date) -> None:
        self.status = "active"
        self.reason = ""
        self.changes.append(Change(from_month, self.version, "resumed"))

    def terminate(self, reason: str, from_month: Month, *, operator: str, effective: date) -> None:
        self._require_monthly("terminate")
        self._require_status(("active", "suspended"), "terminate")
        assert self.first_month is not None
        if not reason.strip():
            raise InvalidInput("a termination needs a reason")
        if from_month < self.first_month:
            raise InvalidInput(f"case {self.case_no}: {from_month} is before the first benefit month {self.first_month}")
        self._terminated(reason=reason, from_month=from_month, operator=operator, effective=effective)

    @event(Terminated)
    def _terminated(self, reason: str, from_month: Month, operator: str, effective: date) -> None:
        self.status = "terminated"
        self.reason = reason
        self.terminated_from = from_month
        self.changes.append(Change(from_month, self.version, "terminated"))

    def approve_grant(
        self,
        *,
        grant_type: str,
        amount_fen: int,
        reason: str,
        override_reason: str,
        standard_fen: int | None,
        operator: str,
        effective: date,
    ) -> None:
        if self.is_monthly:
            raise InvalidTransition(f"case {self.case_no} is {self.programme.value}; grants are for temporary assistance cases")
        self._require_status(("applied",), "approve a grant")
        check_fen(amount_fen, "the grant amount")
        if not grant_type.strip() or not reason.strip():
            raise InvalidInput("a grant needs a type and a reason")
        v = self.valid_verification(effective)
        self._four_eyes(self.case_no, v, operator)
        if standard_fen is None:
            raise AmountAboveStandard(
                f"no dibao standard for {self.area.value} areas is in force in {Month.of(effective)}; set one first"
            )
        cap = GRANT_OVERRIDE_MULTIPLE * standard_fen
        if amount_fen > cap and not override_reason.strip():
            raise OverrideRequired(
                f"case {self.case_no}: a grant of {yuan(amount_fen)} yuan is above {GRANT_OVERRIDE_MULTIPLE} times "
                f"the monthly dibao standard ({yuan(cap)} yuan); give --override-reason"
            )
        self._grant_approved(
            grant_type=grant_type,
            amount_fen=amount_fen,
            reason=reason,
            override_reason=override_reason,
            standard_fen=standard_fen,
            verification_no=v.no,
            operator=operator,
            effective=effective,
        )

    @event(GrantApproved)
    def _grant_approved(
        self,
        grant_type: str,
        amount_fen: int,
        reason: str,
        override_reason: str,
        standard_fen: int,
        verification_no: int,
        operator: str,
        effective: date,
    ) -> None:
        self.status = "granted"
        self.amount_fen = amount_fen
        self.grant = {"type": grant_type, "amount_fen": amount_fen, "reason": reason, "approved_on": effective}

    def pay_grant(self, payee_name: str, payee_account: str, *, operator: str, effective: date) -> None:
        if self.is_monthly:
            raise InvalidTransition(f"case {self.case_no} is {self.programme.value}; pay it month by month")
        if self.status == "paid":
            raise DuplicatePayment(f"the grant of case {self.case_no} is already paid")
        self._require_status(("granted",), "pay a grant")
        self._grant_paid(payee_name=payee_name, payee_account=payee_account, operator=operator, effective=effective)

    @event(GrantPaid)
    def _grant_paid(self, payee_name: str, payee_account: str, operator: str, effective: date) -> None:
        self.status = "paid"
        assert self.grant is not None
        self.grant = dict(self.grant, paid_on=effective)

    # ------------------------------------------------------------------ the account
    def entitlement(self, month: Month) -> int:
        """What the case is entitled to for ``month``, as far as the ledger knows now (fen)."""
        p = self.period_at(month) if self.is_monthly else None
        return p.amount_fen if p is not None and p.status == "active" else 0

    @property
    def debt_fen(self) -> int:
        """Overpayment established and not yet recovered (negative: recovered more than is owed)."""
        return sum(self.overpaid.values()) - self.recovered_fen

    def true_up(self, month: Month, delivered_fen: int, cause: str, *, operator: str, effective: date) -> int:
        """Keep the overpayment established for ``month`` equal to what was delivered above entitlement.

        Called whenever the entitlement of a month or the value delivered for it changes
        (a retroactive decision, a bank return). Returns the change in debt.
        """
        target = max(0, delivered_fen - self.entitlement(month))
        current = self.overpaid.get(month, 0)
        if target > current:
            self._overpayment_established(
                month=month, amount_fen=target - current, cause=cause, operator=operator, effective=effective
            )
        elif target < current:
            self._overpayment_cancelled(
                month=month, amount_fen=current - target, cause=cause, operator=operator, effective=effective
            )
        return target - current

    def recover(self, amount_fen: int, method: str, reference: str, *, operator: str, effective: date) -> None:
        """Record a recovery of overpayment: a refund received, or an offset against a payment."""
        check_fen(amount_fen, "a recovery")
        if method not in ("refund", "offset"):
            raise InvalidInput(f"unknown recovery method {method!r}")
        if amount_fen > self.debt_fen:
            raise InvalidInput(
                f"case {self.case_no} owes {yuan(max(self.debt_fen, 0))} yuan of overpayment; "
                f"cannot recover {yuan(amount_fen)}"
            )
        self._overpayment_recovered(
            amount_fen=amount_fen, method=method, reference=reference, operator=operator, effective=effective
        )

    def reverse_recovery(self, amount_fen: int, reference: str, *, operator: str, effective: date) -> None:
        """Undo an offset whose payment the bank returned: the debt it cleared is owed again."""
        self._recovery_reversed(amount_fen=amount_fen, reference=reference, operator=operator, effective=effective)

    @event(RecoveryReversed)
    def _recovery_reversed(self, amount_fen: int, reference: str, operator: str, effective: date) -> None:
        self.recovered_fen -= amount_fen
        left = self.offsets.get(reference, 0) - amount_fen
        if left > 0:
            self.offsets[reference] = left
        else:
            self.offsets.pop(reference, None)

    @event(OverpaymentEstablished)
    def _overpayment_established(self, month: Month, amount_fen: int, cause: str, operator: str, effective: date) -> None:
        self.overpaid[month] = self.overpaid.get(month, 0) + amount_fen

    @event(OverpaymentCancelled)
    def _overpayment_cancelled(self, month: Month, amount_fen: int, cause: str, operator: str, effective: date) -> None:
        self.overpaid[month] = self.overpaid.get(month, 0) - amount_fen
        if not self.overpaid[month]:
            del self.overpaid[month]

    @event(OverpaymentRecovered)
    def _overpayment_recovered(self, amount_fen: int, method: str, reference: str, operator: str, effective: date) -> None:
        self.recovered_fen += amount_fen
        if method == "refund":
            self.refunded_fen += amount_fen
        else:
            self.offsets[reference] = self.offsets.get(reference, 0) + amount_fen

    def check_payable(self, month: Month) -> Period:
        """Rule 3: the case must be active in ``month`` as far as the ledger knows now."""
        self._require_monthly("be paid monthly (use grant pay)")
        p = self.period_at(month)
        if p is None or p.status != "active":
            status = p.status if p else ("not yet active" if self.first_month else self.status)
            raise CaseNotActive(f"case {self.case_no} is not active in {month} ({status}); no payment")
        return p


# --------------------------------------------------------------------------- payments


class Payment(LedgerAggregate):
    """One issue of one case's payment for one benefit month.

    Its id is derived from case, month and issue number, so two processes issuing the
    same payment collide on the event store's unique key. A month is paid by issue 1;
    a further issue is allowed only for what is still owed for that month: the full
    amount after the bank returned the earlier issue (a re-issue), or the difference
    after a retroactive increase (a top-up, covering no additional persons).

    ``gross_fen`` is the benefit paid for the month; ``offset_fen`` of it clears
    overpayment debt instead of going to the bank; ``amount_fen`` is the cash sent.
    ``released_fen`` is what was offset at the issue and given back since (both of the
    others are that much less than the issue's).
    """

    class Issued(Aggregate.Created, LedgerAggregate.Event):
        ref: str
        case_no: str
        programme: Programme
        area: Area
        household_no: str
        month: Month
        issue_no: int
        kind: str
        gross_fen: int
        offset_fen: int
        amount_fen: int
        persons: int
        payee_name: str
        payee_account: str
        batch: str

    class Settled(LedgerAggregate.Event):
        pass

    class Returned(LedgerAggregate.Event):
        reason: str

    class OffsetReleased(LedgerAggregate.Event):
        """Part of an offset given back: the debt it cleared was cancelled, so that part of the month is owed again."""

        amount_fen: int

    @staticmethod
    def create_id(case_no: str, month: Month, issue_no: int, **_: Any) -> UUID:
        return payment_id(case_no, month, issue_no)

    @event(Issued)
    def __init__(
        self,
        ref: str,
        case_no: str,
        programme: Programme,
        area: Area,
        household_no: str,
        month: Month,
        issue_no: int,
        kind: str,
        gross_fen: int,
        offset_fen: int,
        amount_fen: int,
        persons: int,
        payee_name: str,
        payee_account: str,
        batch: str,
        operator: str,
        effective: date,
    ) -> None:
        self.ref = ref
        self.case_no = case_no
        self.programme = programme
        self.area = area
        self.household_no = household_no
        self.month = month
        self.issue_no = issue_no
        self.kind = kind
        self.gross_fen = gross_fen
        self.offset_fen = offset_fen
        self.amount_fen = amount_fen
        self.persons = persons
        self.payee_name = payee_name
        self.payee_account = payee_account
        self.batch = batch
        # A payment entirely offset against debt sends nothing to the bank: it is settled at once.
        self.status = "issued" if amount_fen else "settled"
        self.return_reason = ""
        self.released_fen = 0

    @property
    def is_net(self) -> bool:
        """Counts as paid: issued or settled, not returned by the bank."""
        return self.status != "returned"

    @staticmethod
    def delivered(issues: list[Payment]) -> int:
        """The value delivered for a month by its issues: gross of every issue not returned."""
        return sum(p.gross_fen for p in issues if p.is_net)

    @staticmethod
    def owed(case: Case, month: Month, issues: list[Payment]) -> int:
        """What is still owed for ``month``: the entitlement less the value already delivered."""
        return max(0, case.entitlement(month) - Payment.delivered(issues))

    @classmethod
    def issue(
        cls,
        case: Case,
        month: Month,
        issues: list[Payment],
        payee_name: str,
        payee_account: str,
        *,
        offset_fen: int = 0,
        batch: str = "",
        operator: str,
        effective: date,
    ) -> Payment:
        """Issue what is owed to ``case`` for ``month``; ``issues`` are the month's earlier issues in order."""
        period = case.check_payable(month)
        owed = cls.owed(case, month, issues)
        if owed <= 0:
            latest = issues[-1] if issues else None
            where = f" ({latest.ref}, {latest.status})" if latest else ""
            raise DuplicatePayment(
                f"case {case.case_no} is already paid for {month}{where}; "
                "it can be issued again only after the bank returns it"
            )
        if not 0 <= offset_fen <= owed:
            raise InvalidInput(f"an offset of {yuan(offset_fen)} cannot exceed the {yuan(owed)} yuan paid")
        covered_already = any(p.is_net and p.persons for p in issues)
        previous = issues[-1] if issues else None
        kind = "regular" if previous is None else ("re-issue" if not covered_already else "top-up")
        issue_no = previous.issue_no + 1 if previous else 1
        return cls(
            ref=payment_ref(case.case_no, month, issue_no),
            case_no=case.case_no,
            programme=case.programme,
            area=case.area,
            household_no=case.household_no,
            month=month,
            issue_no=issue_no,
            kind=kind,
            gross_fen=owed,
            offset_fen=offset_fen,
            amount_fen=owed - offset_fen,
            persons=0 if covered_already else len(period.covered),
            payee_name=payee_name,
            payee_account=payee_account,
            batch=batch,
            operator=operator,
            effective=effective,
        )

    @classmethod
    def first_issue_event(
        cls,
        *,
        case_no: str,
        household_no: str,
        programme: Programme,
        area: Area,
        month: Month,
        amount_fen: int,
        persons: int,
        payee_name: str,
        payee_account: str,
        batch: str,
        operator: str,
        effective: date,
    ) -> Payment.Issued:
        """The event :meth:`issue` records for a month's first issue to a case without overpayment debt.

        For the payroll of a whole caseload: the caller has established, inside the
        transaction that will store the event, that the case is active in ``month`` with
        entitlement ``amount_fen`` for ``persons``, that nothing was issued for the month
        yet, and that the case owes no overpayment (so nothing is offset). The event is
        the same as the aggregate would record, without building the aggregate; the
        deterministic id still makes a second first issue collide in the event store.
        """
        check_first_issue(case_no, programme, month, amount_fen, persons)
        # Built as the event store's mapper builds events it reads: the same fields, in the
        # order the event class declares them (the stored JSON follows that order).
        e = object.__new__(cls.Issued)
        object.__setattr__(e, "__dict__", dict(
            originator_id=payment_id(case_no, month, 1),
            originator_version=cls.INITIAL_VERSION,
            timestamp=cls.Issued.create_timestamp(),
            originator_topic=_PAYMENT_TOPIC,
            operator=operator,
            effective=effective,
            ref=payment_ref(case_no, month, 1),
            case_no=case_no,
            programme=programme,
            area=area,
            household_no=household_no,
            month=month,
            issue_no=1,
            kind="regular",
            gross_fen=amount_fen,
            offset_fen=0,
            amount_fen=amount_fen,
            persons=persons,
            payee_name=payee_name,
            payee_account=payee_account,
            batch=batch,
        ))
        return e

    def settle(self, *, operator: str, effective: date) -> None:
        if self.status != "issued":
            raise InvalidTransition(f"payment {self.ref} is already {self.status}")
        self._settled(operator=operator, effective=effective)

    @event(Settled)
    def _settled(self, operator: str, effective: date) -> None:
        self.status = "settled"

    def return_(self, reason: str, *, operator: str, effective: date) -> None:
        if self.status != "issued":
            raise InvalidTransition(f"payment {self.ref} is already {self.status}; the bank can return an issued payment only")
        if not reason.strip():
            raise InvalidInput("a bank return needs a reason")
        self._returned(reason=reason, operator=operator, effective=effective)

    @event(Returned)
    def _returned(self, reason: str, operator: str, effective: date) -> None:
        self.status = "returned"
        self.return_reason = reason

    def release_offset(self, amount_fen: int, *, operator: str, effective: date) -> None:
        if not 0 < amount_fen <= self.offset_fen:
            raise InvalidInput(f"payment {self.ref} offset {yuan(self.offset_fen)} yuan; cannot release {yuan(amount_fen)}")
        self._offset_released(amount_fen=amount_fen, operator=operator, effective=effective)

    @event(OffsetReleased)
    def _offset_released(self, amount_fen: int, operator: str, effective: date) -> None:
        self.gross_fen -= amount_fen
        self.offset_fen -= amount_fen
        self.released_fen += amount_fen


_PAYMENT_TOPIC = get_topic(Payment)

# --------------------------------------------------------------------------- payroll batches and bank files


def batch_ref(month: Month, programme: Programme | None, run_no: int) -> str:
    """The human reference of a payroll batch, e.g. ``B-202310-all-1``."""
    return f"B-{month.year:04d}{month.month:02d}-{programme.value if programme else 'all'}-{run_no}"


def batch_id(month: Month, programme: Programme | None, run_no: int) -> UUID:
    return uuid5(NAMESPACE, f"batch:{batch_ref(month, programme, run_no)}")


def bank_file_id(sha256: str) -> UUID:
    """A bank results file is identified by its content: loading it twice collides."""
    return uuid5(NAMESPACE, f"bank-file:{sha256}")


class PayrollBatch(LedgerAggregate):
    """One payroll run for a benefit month: the payments it issued, its approval and its bank file.

    A run writes its payments a chunk at a time; each chunk's payments and the batch's
    record of them commit together. A run killed part-way leaves an open batch that
    the next run resumes.
    """

    class Started(Aggregate.Created, LedgerAggregate.Event):
        ref: str
        month: Month
        programme: Programme | None
        run_no: int

    class PaymentsAdded(LedgerAggregate.Event):
        refs: list[str]
        totals: dict[str, dict[str, int]]

    class Completed(LedgerAggregate.Event):
        pass

    class Approved(LedgerAggregate.Event):
        pass

    class Exported(LedgerAggregate.Event):
        file_name: str
        sha256: str
        lines: int
        amount_fen: int

    @staticmethod
    def create_id(month: Month, programme: Programme | None, run_no: int, **_: Any) -> UUID:
        return batch_id(month, programme, run_no)

    @event(Started)
    def __init__(self, ref: str, month: Month, programme: Programme | None, run_no: int, operator: str, effective: date) -> None:
        self.ref = ref
        self.month = month
        self.programme = programme
        self.run_no = run_no
        self.started_by = operator
        self.run_by = {operator}
        self.refs: list[str] = []
        self.totals: dict[str, dict[str, int]] = {}
        self.status = "open"
        self.approved_by = ""
        self.exports: list[dict[str, Any]] = []

    def add(self, refs: list[str], totals: dict[str, dict[str, int]], *, operator: str, effective: date) -> None:
        if self.status != "open":
            raise InvalidTransition(f"batch {self.ref} is {self.status}; no more payments can be added")
        if refs:
            self._payments_added(refs=refs, totals=totals, operator=operator, effective=effective)

    @event(PaymentsAdded)
    def _payments_added(self, refs: list[str], totals: dict[str, dict[str, int]], operator: str, effective: date) -> None:
        self.run_by.add(operator)
        self.refs.extend(refs)
        for key, t in totals.items():
            mine = self.totals.setdefault(key, {})
            for k, v in t.items():
                mine[k] = mine.get(k, 0) + v

    def complete(self, *, operator: str, effective: date) -> None:
        if self.status != "open":
            raise InvalidTransition(f"batch {self.ref} is already {self.status}")
        self._completed(operator=operator, effective=effective)

    @event(Completed)
    def _completed(self, operator: str, effective: date) -> None:
        self.run_by.add(operator)
        self.status = "completed"

    def approve(self, *, operator: str, effective: date) -> None:
        if self.status == "open":
            raise InvalidTransition(f"batch {self.ref} is still open (its run did not finish); run the payroll again first")
        if self.status != "completed":
            raise InvalidTransition(f"batch {self.ref} is already {self.status}")
        if operator in self.run_by:
            raise FourEyesViolation(
                f"batch {self.ref} was run by {operator}; another operator must approve it before the bank file is exported"
            )
        self._approved(operator=operator, effective=effective)

    @event(Approved)
    def _approved(self, operator: str, effective: date) -> None:
        self.status = "approved"
        self.approved_by = operator

    def record_export(self, file_name: str, sha256: str, lines: int, amount_fen: int, *, operator: str, effective: date) -> None:
        if self.status != "approved":
            raise InvalidTransition(
                f"batch {self.ref} is {self.status}; its bank file can be exported only after another operator approves it"
            )
        self._exported(file_name=file_name, sha256=sha256, lines=lines, amount_fen=amount_fen, operator=operator, effective=effective)

    @event(Exported)
    def _exported(self, file_name: str, sha256: str, lines: int, amount_fen: int, operator: str, effective: date) -> None:
        self.exports.append({"file_name": file_name, "sha256": sha256, "lines": lines, "amount_fen": amount_fen})


class BankFile(LedgerAggregate):
    """A bank results file as loaded: what each line did, and the exceptions it raised."""

    class Loaded(Aggregate.Created, LedgerAggregate.Event):
        file_name: str
        sha256: str
        lines: list[dict[str, Any]]

    class ExceptionResolved(LedgerAggregate.Event):
        line: int
        note: str

    @staticmethod
    def create_id(sha256: str, **_: Any) -> UUID:
        return bank_file_id(sha256)

    @event(Loaded)
    def __init__(self, file_name: str, sha256: str, lines: list[dict[str, Any]], operator: str, effective: date) -> None:
        self.file_name = file_name
        self.sha256 = sha256
        self.lines = lines
        self.loaded_by = operator
        self.loaded_on = effective
        self.resolved: dict[int, str] = {}

    def exceptions(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["outcome"] == "exception"]

    def resolve(self, line: int, note: str, *, operator: str, effective: date) -> None:
        if not note.strip():
            raise InvalidInput("say how the exception was resolved (--note)")
        if line not in {x["line"] for x in self.exceptions()}:
            raise InvalidInput(f"line {line} of {self.file_name} is not an exception")
        if line in self.resolved:
            raise InvalidTransition(f"line {line} of {self.file_name} is already resolved: {self.resolved[line]}")
        self._resolved(line=line, note=note, operator=operator, effective=effective)

    @event(ExceptionResolved)
    def _resolved(self, line: int, note: str, operator: str, effective: date) -> None:
        self.resolved[line] = note


# --------------------------------------------------------------------------- audit seals


def seal_id(position: int) -> UUID:
    return uuid5(NAMESPACE, f"seal:{position}")


class Seal(LedgerAggregate):
    """A seal on the event log: the chain digest up to a position, for auditors to keep outside."""

    class Recorded(Aggregate.Created, LedgerAggregate.Event):
        position: int
        digest: str

    @staticmethod
    def create_id(position: int, **_: Any) -> UUID:
        return seal_id(position)

    @event(Recorded)
    def __init__(self, position: int, digest: str, operator: str, effective: date) -> None:
        self.position = position
        self.digest = digest
