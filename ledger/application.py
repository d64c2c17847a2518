"""The application service: one method per use case of caseworkers and finance staff.

Each command method loads the aggregates it needs, lets them validate and record
their events, and saves everything in one atomic write. A command either records
all of its events or none.

Many commands can share one :class:`UnitOfWork` (an import file, the demo, a
payroll batch): they then see each other's changes and are written together in one
transaction by :meth:`UnitOfWork.commit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from functools import lru_cache
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Recording, Transcoder

from ledger.codec import LedgerTranscoder

from ledger.domain import (
    Case,
    Household,
    Payment,
    Standard,
    case_id,
    household_id,
    payment_id,
    standard_id,
)
from ledger.errors import AlreadyExists, ConcurrentChange, InvalidInput, NotFound
from ledger.finance import FinanceCommands
from ledger.transcodings import register_all
from ledger.values import Area, Channel, Month, Programme, dibao_for, mask_id, parse_id_number

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)

#: How often a command is retried on fresh state when another process wrote the same aggregate.
RETRIES = 3

#: Payments may be issued for benefit months at most this many months after the current one.
MONTHS_AHEAD = 2


class UnitOfWork:
    """Aggregates loaded or created by one or more commands, saved together in one transaction."""

    def __init__(self, app: LedgerApp) -> None:
        self.app = app
        self._cache: dict[UUID, Aggregate] = {}
        self._missing: set[UUID] = set()

    def find(self, aggregate_id: UUID) -> Any | None:
        if aggregate_id in self._cache:
            return self._cache[aggregate_id]
        if aggregate_id in self._missing:
            return None
        try:
            aggregate = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            self._missing.add(aggregate_id)
            return None
        self._cache[aggregate_id] = aggregate
        return aggregate

    def preload(self, aggregate_ids: Iterable[UUID]) -> None:
        """Load many aggregates in a few queries; ids not in the store are remembered as missing.

        Only an optimisation for batches: :meth:`find` gives the same answers without it.
        """
        wanted = [i for i in dict.fromkeys(aggregate_ids) if i not in self._cache and i not in self._missing]
        select_many = getattr(self.app.recorder, "select_events_many", None)
        if not wanted or select_many is None:
            return
        stored = select_many(wanted)
        to_event = self.app.mapper.to_domain_event
        for i in wanted:
            if i in stored:
                # The events' own mutators, as the repository's projector calls them (without
                # its per-event runtime protocol check, which costs more than the mutation).
                aggregate = None
                for se in stored[i]:
                    aggregate = to_event(se).mutate(aggregate)  # type: ignore[attr-defined]
                self._cache[i] = aggregate
            else:
                self._missing.add(i)

    def add(self, aggregate: A, what: str) -> A:
        if self.find(aggregate.id) is not None:
            raise AlreadyExists(f"{what} is already recorded")
        self._missing.discard(aggregate.id)
        self._cache[aggregate.id] = aggregate
        return aggregate

    def size(self) -> int:
        """How many aggregates this unit of work holds."""
        return len(self._cache)

    def pending(self) -> int:
        return sum(len(a.pending_events) for a in self._cache.values())

    def seed(self, aggregate: Aggregate) -> None:
        """Start from an aggregate this process already holds (if it is stale, the save collides and the command is retried)."""
        self._cache[aggregate.id] = aggregate

    def find_cached(self, aggregate_id: UUID) -> Any | None:
        """An aggregate this unit of work holds, without loading it."""
        return self._cache.get(aggregate_id)

    def commit(self) -> list[Recording]:
        """Write every pending event of every aggregate in one transaction; returns what was recorded."""
        dirty = [a for a in self._cache.values() if a.pending_events]
        # Aggregates stay cached: they now equal what was stored.
        return self.app.save(*dirty) if dirty else []

    def commit_batch(self) -> int:
        """Write every pending event in one transaction, as :meth:`commit` does; returns how many.

        For a batch as large as an import file, which needs no recordings back: the
        aggregates' events go through the application's mapper into one insert by its
        recorder. ``Application.save`` would also test every aggregate against the
        library's runtime-checkable protocols and build a recording of every event,
        which costs about half as much again as storing them. Saving does nothing else
        for this application: it takes no snapshots and has no hook after saving. Where
        it would (snapshot intervals, a hook overridden, a repository cache that is not
        fast-forwarded and so must be given the saved aggregates), :meth:`commit` is used.
        """
        if not self.batch_writable():
            count = self.pending()
            self.commit()
            return count
        events = [e for a in self._cache.values() if a.pending_events for e in a.collect_events()]
        if events:
            to_stored = self.app.mapper.to_stored_event
            self.app.recorder.insert_events([to_stored(e) for e in events])
        return len(events)

    def batch_writable(self) -> bool:
        """Whether saving is only storing the events (see :meth:`commit_batch`), so they may be encoded elsewhere."""
        app, repository = self.app, self.app.repository
        return not (
            app.snapshotting_intervals
            or (repository.cache is not None and not repository.fastforward)
            or type(app)._notify is not Application._notify
            or type(app).notify is not Application.notify
        )

    def forget(self) -> None:
        self._cache.clear()
        self._missing.clear()


class LedgerApp(FinanceCommands, Application):
    """The social-assistance ledger: every command records immutable events."""

    name = "Ledger"

    def __init__(self, url: str, env: dict[str, str] | None = None, clock: Callable[[], date] = date.today) -> None:
        """Open the ledger at a database URL; ``memory:`` keeps events in this process only.

        ``clock`` gives today's date: payments may not be issued for benefit months more
        than :data:`MONTHS_AHEAD` months after it.
        """
        self.today = clock
        if url == "memory:":
            settings = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        else:
            settings = {
                "PERSISTENCE_MODULE": "ledger.persistence:LedgerFactory",
                "SQLALCHEMY_URL": url,
            }
        settings.update(env or {})
        super().__init__(env=settings)
        self.url = url

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON format through :class:`ledger.codec.LedgerTranscoder` (same bytes, faster)."""
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_all(transcoder)

    # ------------------------------------------------------------------ plumbing
    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    def run(self, command: Callable[[UnitOfWork], T], uow: UnitOfWork | None = None) -> T:
        """Run ``command`` and save what it recorded atomically.

        Inside a caller's unit of work nothing is saved here. Otherwise a write that
        collides with another process's write (same aggregate version) is retried on
        fresh state: the command's own checks then decide (e.g. "already paid").
        """
        if uow is not None:
            return command(uow)
        for _attempt in range(RETRIES):
            work = UnitOfWork(self)
            result = command(work)
            try:
                work.commit()
            except IntegrityError:
                continue
            return result
        raise ConcurrentChange("the case changed meanwhile, try again")

    def _household(self, uow: UnitOfWork, number: str) -> Household:
        h = uow.find(household_id(number))
        if h is None:
            raise NotFound(f"no household {number}")
        return h

    def _case(self, uow: UnitOfWork, case_no: str) -> Case:
        c = uow.find(case_id(case_no))
        if c is None:
            raise NotFound(f"no case {case_no}")
        return c

    def _standard(self, uow: UnitOfWork, programme: Programme, area: Area, month: Month) -> int | None:
        s: Standard | None = uow.find(standard_id(programme, area))
        return s.in_force(month) if s else None

    # ------------------------------------------------------------------ households
    def register_household(
        self,
        *,
        number: str,
        community: str,
        area: Area,
        members: Iterable[dict[str, Any]],
        payee_account: str,
        payee_name: str | None = None,
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> str:
        """Register a household and its members; returns the household number."""
        checked = [_member(m) for m in members]

        def command(w: UnitOfWork) -> str:
            h = Household.register(
                number=number.strip(),
                community=community.strip(),
                area=area,
                members=checked,
                payee_account=payee_account.strip(),
                payee_name=payee_name,
                operator=operator,
                effective=effective,
            )
            w.add(h, f"household {number}")
            return h.number

        return self.run(command, uow)

    def add_member(self, number: str, member: dict[str, Any], *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        checked = _member(member)
        self.run(lambda w: self._household(w, number).add_member(checked, operator=operator, effective=effective), uow)

    def remove_member(self, number: str, id_number: str, reason: str, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        idn = parse_id_number(id_number)
        self.run(lambda w: self._household(w, number).remove_member(idn, reason, operator=operator, effective=effective), uow)

    def record_death(self, number: str, id_number: str, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        idn = parse_id_number(id_number)
        self.run(lambda w: self._household(w, number).record_death(idn, operator=operator, effective=effective), uow)

    def move_household(self, number: str, area: Area, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        self.run(lambda w: self._household(w, number).move(area, operator=operator, effective=effective), uow)

    def change_account(self, number: str, payee_name: str, payee_account: str, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        self.run(
            lambda w: self._household(w, number).change_account(payee_name, payee_account, operator=operator, effective=effective),
            uow,
        )

    # ------------------------------------------------------------------ standards
    def set_standard(
        self,
        programme: Programme,
        area: Area,
        amount_fen: int,
        from_month: Month,
        *,
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> None:
        """Set the local monthly standard per person of a programme in an area from a month on."""
        if programme is Programme.TEMPORARY:
            raise InvalidInput("temporary assistance has no monthly standard; its cap follows the dibao standard")

        def command(w: UnitOfWork) -> None:
            s = w.find(standard_id(programme, area))
            if s is None:
                s = w.add(Standard(programme=programme, area=area, operator=operator, effective=effective), "standard")
            s.set(amount_fen, from_month, operator=operator, effective=effective)

        self.run(command, uow)

    # ------------------------------------------------------------------ cases
    def apply(
        self,
        *,
        case_no: str,
        household_no: str,
        programme: Programme,
        channel: Channel,
        single_person: str | None = None,
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> str:
        """Record an application (programme, channel, optional single-person inclusion)."""
        single = parse_id_number(single_person) if single_person else None
        if not case_no.strip():
            raise InvalidInput("case number is empty")

        def command(w: UnitOfWork) -> str:
            h = self._household(w, household_no)
            if programme is Programme.URBAN_DIBAO and h.area is not Area.URBAN:
                raise InvalidInput(f"household {household_no} is rural; it applies for rural-dibao")
            if programme is Programme.RURAL_DIBAO and h.area is not Area.RURAL:
                raise InvalidInput(f"household {household_no} is urban; it applies for urban-dibao")
            if single is not None:
                m = h.member(single)
                if m["status"] != "present":
                    raise InvalidInput(f"member {mask_id(single)} is {m['status']}; cannot apply alone")
                if not {"ill", "disabled"} & set(m.get("flags", [])):
                    raise InvalidInput(
                        f"single-person inclusion is for a seriously ill or severely disabled member; "
                        f"{mask_id(single)} is neither"
                    )
            c = Case(
                case_no=case_no.strip(),
                household_no=h.number,
                programme=programme,
                area=h.area,
                channel=channel,
                single_person=single,
                operator=operator,
                effective=effective,
            )
            w.add(c, f"case {case_no}")
            return c.case_no

        return self.run(command, uow)

    def verify(
        self,
        case_no: str,
        *,
        income_fen: int,
        assets_ok: bool,
        verifier: str,
        valid_until: date,
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> int:
        """Record a means-test verification; returns its number within the case."""

        def command(w: UnitOfWork) -> int:
            c = self._case(w, case_no)
            programme = c.programme if c.is_monthly else dibao_for(c.area)
            std = self._standard(w, programme, c.area, Month.of(effective))
            c.verify(
                income_fen=income_fen,
                assets_ok=assets_ok,
                standard_fen=std,
                verifier=verifier,
                valid_until=valid_until,
                operator=operator,
                effective=effective,
            )
            return len(c.verifications)

        return self.run(command, uow)

    def _covered(self, w: UnitOfWork, c: Case, covered: list[str] | None) -> list[str]:
        h = self._household(w, c.household_no)
        if covered:
            ids = [parse_id_number(i) for i in covered]
            for i in ids:
                m = h.member(i)
                if m["status"] != "present":
                    raise InvalidInput(f"member {mask_id(i)} of household {h.number} is {m['status']}; cannot be covered")
            if len(set(ids)) != len(ids):
                raise InvalidInput("a person is listed twice in the persons covered")
            return ids
        if c.single_person:
            return [c.single_person]
        return h.living_members()

    def approve(
        self,
        case_no: str,
        *,
        amount_fen: int,
        first_month: Month,
        covered: list[str] | None = None,
        add_on_fen: int = 0,
        add_on_reason: str = "",
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> None:
        """Approve a monthly case: amount, persons covered (default: the living members), first month."""

        def command(w: UnitOfWork) -> None:
            c = self._case(w, case_no)
            persons = self._covered(w, c, covered)
            c.approve(
                amount_fen=amount_fen,
                covered=persons,
                first_month=first_month,
                standard_fen=self._standard(w, c.programme, c.area, first_month),
                add_on_fen=add_on_fen,
                add_on_reason=add_on_reason,
                operator=operator,
                effective=effective,
            )

        self.run(command, uow)

    def approve_legacy(
        self,
        case_no: str,
        *,
        amount_fen: int,
        first_month: Month,
        approver: str,
        legacy_reference: str,
        covered: list[str] | None = None,
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> None:
        """Carry over an approval from a legacy system (import only; see Case.approve_legacy)."""

        def command(w: UnitOfWork) -> None:
            c = self._case(w, case_no)
            c.approve_legacy(
                amount_fen=amount_fen,
                covered=self._covered(w, c, covered),
                first_month=first_month,
                approver=approver,
                legacy_reference=legacy_reference,
                operator=operator,
                effective=effective,
            )

        self.run(command, uow)

    def seal(self, *, operator: str, effective: date) -> tuple[int, str]:
        """Verify the whole chain, then record a seal of its digest at the head; returns (position, digest)."""
        from ledger.audit import verify_log
        from ledger.domain import Seal
        from ledger.errors import RuleViolation

        report = verify_log(self)
        if report.problems:
            position, why = report.problems[0]
            raise RuleViolation(f"the record does not verify (position {position}: {why}); nothing sealed")
        if not report.events:
            raise InvalidInput("the ledger is empty; nothing to seal")
        position, digest = report.head_position, report.head_digest
        self.run(lambda w: w.add(Seal(position=position, digest=digest, operator=operator, effective=effective),
                                 f"a seal at position {position}"))
        return position, digest

    def reject(self, case_no: str, reason: str, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        self.run(lambda w: self._case(w, case_no).reject(reason, operator=operator, effective=effective), uow)

    def adjust(
        self,
        case_no: str,
        *,
        amount_fen: int,
        from_month: Month,
        covered: list[str] | None = None,
        add_on_fen: int = 0,
        add_on_reason: str = "",
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> None:
        """Change a case's monthly amount (and persons covered) from a month on, on a new verification."""

        def command(w: UnitOfWork) -> None:
            c = self._case(w, case_no)
            persons = self._covered(w, c, covered) if covered else list(c.covered)
            c.adjust(
                amount_fen=amount_fen,
                covered=persons,
                from_month=from_month,
                standard_fen=self._standard(w, c.programme, c.area, from_month),
                add_on_fen=add_on_fen,
                add_on_reason=add_on_reason,
                operator=operator,
                effective=effective,
            )
            self._true_up(w, c, from_month, f"amount changed from {from_month}", operator, effective)

        self.run(command, uow)

    def suspend(self, case_no: str, reason: str, from_month: Month, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        """Suspend from a month on; months already paid from then on become overpayments."""

        def command(w: UnitOfWork) -> None:
            c = self._case(w, case_no)
            c.suspend(reason, from_month, operator=operator, effective=effective)
            self._true_up(w, c, from_month, f"suspended from {from_month}: {reason}", operator, effective)

        self.run(command, uow)

    def resume(self, case_no: str, from_month: Month, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        """Resume from a month on; months from then on are owed again (arrears if already past)."""

        def command(w: UnitOfWork) -> None:
            c = self._case(w, case_no)
            c.resume(from_month, operator=operator, effective=effective)
            self._true_up(w, c, from_month, f"resumed from {from_month}", operator, effective)

        self.run(command, uow)

    def terminate(self, case_no: str, reason: str, from_month: Month, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        """Terminate from a month on; months already paid from then on become overpayments."""

        def command(w: UnitOfWork) -> None:
            c = self._case(w, case_no)
            c.terminate(reason, from_month, operator=operator, effective=effective)
            self._true_up(w, c, from_month, f"terminated from {from_month}: {reason}", operator, effective)

        self.run(command, uow)

    # ------------------------------------------------------------------ temporary assistance
    def approve_grant(
        self,
        case_no: str,
        *,
        grant_type: str,
        amount_fen: int,
        reason: str,
        override_reason: str = "",
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> None:
        """Approve a temporary grant; above ten monthly dibao standards it needs an override reason."""

        def command(w: UnitOfWork) -> None:
            c = self._case(w, case_no)
            std = self._standard(w, dibao_for(c.area), c.area, Month.of(effective))
            c.approve_grant(
                grant_type=grant_type,
                amount_fen=amount_fen,
                reason=reason,
                override_reason=override_reason,
                standard_fen=std,
                operator=operator,
                effective=effective,
            )

        self.run(command, uow)

    def pay_grant(self, case_no: str, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        def command(w: UnitOfWork) -> None:
            c = self._case(w, case_no)
            h = self._household(w, c.household_no)
            c.pay_grant(h.payee_name, h.payee_account, operator=operator, effective=effective)

        self.run(command, uow)

    # ------------------------------------------------------------------ payments
    def horizon(self) -> Month:
        """The last benefit month any payment can be for (see :data:`MONTHS_AHEAD`)."""
        return Month.of(self.today()).add(MONTHS_AHEAD)

    def issues(self, w: UnitOfWork, case_no: str, month: Month) -> list[Payment]:
        """Every issue of a case's payment for a month, in order (issues are numbered 1, 2, ...)."""
        out: list[Payment] = []
        n = 1
        while (p := w.find(payment_id(case_no, month, n))) is not None:
            out.append(p)
            n += 1
        return out

    def preload_months(self, w: UnitOfWork, case_nos: Iterable[str], months: Iterable[Month], depth: int = 3) -> None:
        """Load the payments of many cases and months in a few queries (an optimisation only)."""
        ms = list(months)
        w.preload(payment_id(c, m, n) for c in case_nos for m in ms for n in range(1, depth + 1))

    def _true_up(self, w: UnitOfWork, c: Case, first: Month, cause: str, operator: str, effective: date) -> None:
        """Re-establish the overpayment of every month from ``first`` on after a change (rule 6)."""
        if not c.is_monthly:
            return
        months = list(first.until(self.horizon()))
        # A month without a first issue has no issues at all: look those up first.
        w.preload(payment_id(c.case_no, m, 1) for m in months)
        months = [m for m in months if m in c.overpaid or w.find(payment_id(c.case_no, m, 1)) is not None]
        self.preload_months(w, [c.case_no], months)
        for m in months:
            delivered = Payment.delivered(self.issues(w, c.case_no, m))
            if delivered or m in c.overpaid:
                c.true_up(m, delivered, cause, operator=operator, effective=effective)
        self._release_excess_recovery(w, c, operator, effective)

    def _release_excess_recovery(self, w: UnitOfWork, c: Case, operator: str, effective: date) -> None:
        """Give back offsets that recovered more debt than is now owed (the debt was cancelled later).

        Newest offsets first: each released part of a payment's month is owed again, and
        the next payroll pays it in cash. A release lowers what its month was delivered, so
        the month's overpayment is kept equal to what it now is (rule 6); where that cancels
        overpayment of the month too, more of the recovery is in excess and the offsets are
        looked at again, until none recovers more than is owed.
        """
        while (excess := -c.debt_fen) > 0:
            released = False
            for ref in reversed(list(c.offsets)):
                p = self._payment(w, ref)
                take = min(excess, c.offsets[ref], p.offset_fen) if p.is_net else 0
                if take <= 0:
                    continue
                p.release_offset(take, operator=operator, effective=effective)
                c.reverse_recovery(take, ref, operator=operator, effective=effective)
                delivered = Payment.delivered(self.issues(w, c.case_no, p.month))
                c.true_up(p.month, delivered, f"offset of {ref} released", operator=operator, effective=effective)
                released = True
                break
            if not released:
                return

    def issue_payment(
        self,
        case_no: str,
        month: Month,
        *,
        batch: str = "",
        operator: str,
        effective: date,
        uow: UnitOfWork | None = None,
    ) -> str:
        """Issue what is owed to a case for a month; returns the payment reference.

        After a bank return the month is owed again (a re-issue); after a retroactive
        increase the difference is owed (a top-up). Overpayment debt of the case is
        recovered by offset against the payment, never below zero.
        """

        def command(w: UnitOfWork) -> str:
            p = self._issue(w, self._case(w, case_no), month, batch, operator, effective)
            return p.ref

        return self.run(command, uow)

    def _issue(self, w: UnitOfWork, c: Case, month: Month, batch: str, operator: str, effective: date) -> Payment:
        if month > self.horizon():
            raise InvalidInput(f"{month} is more than {MONTHS_AHEAD} months ahead; no payment yet")
        h = self._household(w, c.household_no)
        issues = self.issues(w, c.case_no, month)
        owed = Payment.owed(c, month, issues)
        offset = min(max(c.debt_fen, 0), owed)
        p = Payment.issue(c, month, issues, h.payee_name, h.payee_account, offset_fen=offset, batch=batch,
                          operator=operator, effective=effective)
        w.add(p, f"payment {p.ref}")
        if offset:
            c.recover(offset, "offset", p.ref, operator=operator, effective=effective)
        return p

    def _payment(self, w: UnitOfWork, ref: str) -> Payment:
        case_no, month, issue_no = parse_payment_ref(ref)
        p = w.find(payment_id(case_no, month, issue_no))
        if p is None:
            raise NotFound(f"no payment {ref}")
        return p

    def settle_payment(self, ref: str, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        self.run(lambda w: self._payment(w, ref).settle(operator=operator, effective=effective), uow)

    def return_payment(self, ref: str, reason: str, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        """Record a bank return: the month is owed again, and any overpayment of it re-established."""

        def command(w: UnitOfWork) -> None:
            p = self._payment(w, ref)
            p.return_(reason, operator=operator, effective=effective)
            c = self._case(w, p.case_no)
            if p.offset_fen:
                c.reverse_recovery(p.offset_fen, p.ref, operator=operator, effective=effective)
            delivered = Payment.delivered(self.issues(w, p.case_no, p.month))
            c.true_up(p.month, delivered, f"bank returned {p.ref}", operator=operator, effective=effective)
            self._release_excess_recovery(w, c, operator, effective)

        self.run(command, uow)

    def record_refund(self, case_no: str, amount_fen: int, reference: str, *, operator: str, effective: date, uow: UnitOfWork | None = None) -> None:
        """Record a refund of overpayment received from the household."""
        if not reference.strip():
            raise InvalidInput("a refund needs a reference (receipt or bank transaction number)")
        self.run(lambda w: self._case(w, case_no).recover(amount_fen, "refund", reference, operator=operator, effective=effective), uow)

    # ------------------------------------------------------------------ direct reads (for commands)
    def get_case(self, case_no: str) -> Case:
        return self._case(UnitOfWork(self), case_no)

    def get_household(self, number: str) -> Household:
        return self._household(UnitOfWork(self), number)


def parse_payment_ref(ref: str) -> tuple[str, Month, int]:
    """Split ``P-<case>-<YYYYMM>-<n>`` into its case number, month and issue number."""
    parts = ref.strip().split("-")
    try:
        if parts[0] != "P" or len(parts) < 4:
            raise ValueError
        ym, n = parts[-2], int(parts[-1])
        month = Month(int(ym[:4]), int(ym[4:6])) if len(ym) == 6 else None
        if month is None or n < 1:
            raise ValueError
    except (ValueError, InvalidInput):
        raise InvalidInput(f"invalid payment reference {ref!r}: expected P-<case>-<YYYYMM>-<n>") from None
    return "-".join(parts[1:-2]), month, n


_RELATIONS = {"head", "spouse", "child", "parent", "grandchild", "grandparent", "sibling", "other"}
_FLAGS = {"ill", "disabled", "elderly", "minor"}


def _member(m: dict[str, Any]) -> dict[str, Any]:
    """Check one member's fields and return them in stored form."""
    if not isinstance(m.get("name", ""), str) or not isinstance(m.get("relation", ""), str):
        raise InvalidInput("a member's name and relation are text")
    name = str(m.get("name", "")).strip()
    if not name:
        raise InvalidInput("a member needs a name")
    relation = str(m.get("relation", "")).strip()
    if relation not in _RELATIONS:
        raise InvalidInput(f"invalid relation {relation!r} for {name}: choose one of {', '.join(sorted(_RELATIONS))}")
    flags = m.get("flags") or []
    if not isinstance(flags, (str, list)) or (isinstance(flags, list) and not all(isinstance(f, str) for f in flags)):
        raise InvalidInput(f"invalid flags for {name}: expected a list of ill, disabled, elderly, minor")
    if isinstance(flags, str):
        flags = [f for f in flags.replace("+", ",").split(",") if f.strip()]
    flags = sorted({str(f).strip() for f in flags})
    bad = [f for f in flags if f not in _FLAGS]
    if bad:
        raise InvalidInput(f"invalid flag {bad[0]!r} for {name}: choose from {', '.join(sorted(_FLAGS))}")
    return {"id_number": checked_id_number(str(m.get("id_number", ""))), "name": name, "relation": relation, "flags": flags}


@lru_cache(maxsize=1 << 16)
def checked_id_number(text: str) -> str:
    """:func:`ledger.values.parse_id_number`, remembered for the numbers that passed.

    An import checks each member's identity number when it reads its file (to name
    the field of a bad one) and the command that records the member checks it again;
    the second check of a number that passed is a look-up. Only valid numbers are
    remembered: an invalid one is refused, with the same message, every time.
    """
    return parse_id_number(text)
