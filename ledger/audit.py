"""Proof that nobody altered the record: the hash chain recomputed from the stored events.

The chain kept beside the events (written in the same transaction as each append) is
never trusted: :func:`verify_log` recomputes every link from the events themselves and
compares it with the kept chain (to name the first position that differs), with every
seal recorded in the log, and with a digest an auditor kept outside the system. An
audit pack (:func:`export_pack`) carries the events and their links to files that
:func:`verify_pack` checks without the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventsourcing.utils import get_topic
from sqlalchemy import func, select

from ledger.chain import GENESIS, next_link, oid_hex
from ledger.domain import Seal

if TYPE_CHECKING:
    from ledger.application import LedgerApp

SEAL_TOPIC = get_topic(Seal.Recorded)
PACK_FORMAT = "ledger-audit-pack/1"
PAGE = 10_000

Progress = Callable[[int, int], None]


@dataclass
class ChainReport:
    """What a verification found."""

    events: int = 0
    head_position: int = 0
    head_digest: str = GENESIS.hex()
    seals: list[dict[str, Any]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    against: str | None = None
    against_position: int | None = None

    @property
    def first_bad(self) -> int | None:
        return min((p for p, _ in self.problems), default=None)

    @property
    def ok(self) -> bool:
        return not self.problems and (self.against is None or self.against_position is not None)


@dataclass(frozen=True)
class _Row:
    id: int
    originator_id: Any
    originator_version: int
    topic: str
    state: bytes


def _stream(app: LedgerApp, sql: str, head: int) -> Iterator[tuple[Any, ...]]:
    """Rows of a query in order, streamed through the driver (a server-side cursor on PostgreSQL)."""
    engine = app.recorder.datastore.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        if conn.dialect.name == "postgresql":
            cursor = dbapi.cursor(name="ledger_audit_stream")
            cursor.itersize = PAGE
            cursor.execute(sql.replace("?", "%s"), (head,))
        else:
            cursor = dbapi.cursor()
            cursor.execute(sql, (head,))
        while rows := cursor.fetchmany(PAGE):
            yield from rows
        cursor.close()


def _events(app: LedgerApp, head: int) -> Iterator[Any]:
    table = app.recorder.events_table_name  # type: ignore[attr-defined]
    sql = f"SELECT id, originator_id, originator_version, topic, state FROM {table} WHERE id <= ? ORDER BY id"
    for r in _stream(app, sql, head):
        yield _Row(r[0], r[1], r[2], r[3], bytes(r[4]) if isinstance(r[4], memoryview) else r[4])


def _kept_chain(app: LedgerApp, head: int) -> Iterator[tuple[int, str]]:
    chain = app.recorder.chain_table.name  # type: ignore[attr-defined]
    yield from _stream(app, f"SELECT position, link FROM {chain} WHERE position <= ? ORDER BY position", head)


def _seals(app: LedgerApp, report: ChainReport) -> dict[int, list[dict[str, Any]]]:
    """The seals recorded in the log, by the position they seal."""
    out: dict[int, list[dict[str, Any]]] = {}
    position = 0
    while True:
        notes = app.recorder.select_notifications(start=position, limit=PAGE, topics=[SEAL_TOPIC], inclusive_of_start=False)
        if not notes:
            return out
        for n in notes:
            try:
                state = json.loads(n.state)
                seal = {"seal_position": n.id, "position": int(state["position"]), "digest": str(state["digest"])}
            except (ValueError, KeyError, TypeError):
                report.problems.append((n.id, "a seal that cannot be read (its stored event was altered)"))
                continue
            out.setdefault(seal["position"], []).append(seal)
        position = notes[-1].id


def verify_log(app: LedgerApp, against: str | None = None, progress: Progress | None = None) -> ChainReport:
    """Recompute the chain from the stored events and check it against the kept chain, the seals and ``against``."""
    report = ChainReport(against=against.lower() if against else None)
    # Everything is read up to the head as it is now, so appends made meanwhile are left out.
    total = app.recorder.max_notification_id() or 0
    chain = app.recorder.chain_table  # type: ignore[attr-defined]
    kept_head = app.recorder._read(select(func.max(chain.c.position)))[0][0] or 0  # type: ignore[attr-defined]
    total = max(total, kept_head)
    seals = _seals(app, report)
    kept = _kept_chain(app, total)
    kept_next = next(kept, None)
    kept_previous = GENESIS
    previous = GENESIS
    for n in _events(app, total):
        while kept_next is not None and kept_next[0] < n.id:
            report.problems.append((kept_next[0], "in the chain but missing from the log (an event was deleted)"))
            kept_previous = bytes.fromhex(kept_next[1])
            kept_next = next(kept, None)
        in_step = previous == kept_previous
        previous = next_link(previous, n.id, n.originator_id, n.originator_version, n.topic, n.state)
        link = previous.hex()
        if kept_next is None or kept_next[0] != n.id:
            report.problems.append((n.id, "an event that is not in the chain (inserted outside the ledger)"))
        else:
            # Each event is also checked on its own against the kept chain, so that one
            # altered event is named once instead of every link after it. While the
            # recomputed chain agrees with the kept one, that is the same computation.
            local = link if in_step else next_link(
                kept_previous, n.id, n.originator_id, n.originator_version, n.topic, n.state
            ).hex()
            if kept_next[1] != local:
                report.problems.append((n.id, "the event differs from the one chained when it was recorded (changed or moved)"))
            kept_previous = bytes.fromhex(kept_next[1])
            kept_next = next(kept, None)
        for seal in seals.get(n.id, []):
            seal["ok"] = seal["digest"] == link
        if report.against == link:
            report.against_position = n.id
        report.events += 1
        report.head_position, report.head_digest = n.id, link
        if progress and report.events % 100_000 == 0:
            progress(n.id, total)
    while kept_next is not None:
        report.problems.append((kept_next[0], "in the chain but missing from the log (an event was deleted)"))
        kept_next = next(kept, None)
    for position, found in sorted(seals.items()):
        for seal in found:
            seal.setdefault("ok", False)
            report.seals.append(seal)
            if not seal["ok"]:
                report.problems.append(
                    (position, f"the seal recorded at {seal['seal_position']} does not match the events up to {position}")
                )
    report.problems.sort()
    if progress:
        progress(total, total)
    return report


# --------------------------------------------------------------------------- audit packs


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_pack(app: LedgerApp, out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Write events (JSON Lines, log order, with their links), seals and a manifest to ``out``."""
    report = verify_log(app)
    if report.problems:
        position, why = report.problems[0]
        raise ValueError(f"the record does not verify (position {position}: {why}); no pack written")
    out.mkdir(parents=True, exist_ok=True)
    previous = GENESIS
    count = 0
    total = app.recorder.max_notification_id() or 0
    with (out / "events.jsonl").open("w", encoding="utf-8") as f:
        for n in _events(app, report.head_position):
            previous = next_link(previous, n.id, n.originator_id, n.originator_version, n.topic, n.state)
            f.write(json.dumps({
                "position": n.id,
                "originator_id": oid_hex(n.originator_id),
                "originator_version": n.originator_version,
                "topic": n.topic,
                "state": bytes(n.state).decode("utf-8"),
                "link": previous.hex(),
            }, ensure_ascii=False) + "\n")
            count += 1
            if progress and count % 100_000 == 0:
                progress(n.id, total)
    seals = [{k: s[k] for k in ("seal_position", "position", "digest")} for s in report.seals]
    (out / "seals.json").write_text(json.dumps(seals, indent=2) + "\n", encoding="utf-8")
    manifest = {
        "format": PACK_FORMAT,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "events": count,
        "head_position": report.head_position,
        "head_digest": report.head_digest,
        "files": {name: _sha256(out / name) for name in ("events.jsonl", "seals.json")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def verify_pack(pack: Path, against: str | None = None) -> ChainReport:
    """Check an audit pack on its own: file digests, every link, the seals and the head."""
    report = ChainReport(against=against.lower() if against else None)
    try:
        manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
        seals = json.loads((pack / "seals.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        report.problems.append((0, f"the pack is incomplete or unreadable: {e}"))
        return report
    if manifest.get("format") != PACK_FORMAT:
        report.problems.append((0, f"not an audit pack of this ledger (format {manifest.get('format')!r})"))
        return report
    for name, digest in manifest.get("files", {}).items():
        if _sha256(pack / name) != digest:
            report.problems.append((0, f"{name} differs from the manifest's digest"))
    wanted: dict[int, list[dict[str, Any]]] = {}
    for s in seals:
        wanted.setdefault(int(s["position"]), []).append(dict(s))
    previous = GENESIS
    with (pack / "events.jsonl").open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            try:
                e = json.loads(line)
                previous = next_link(previous, e["position"], e["originator_id"], e["originator_version"], e["topic"],
                                     e["state"].encode("utf-8"))
            except (ValueError, KeyError, TypeError):
                report.problems.append((0, f"events.jsonl line {line_no} cannot be read"))
                continue
            link = previous.hex()
            if e.get("link") != link:
                report.problems.append((e["position"], "the event differs from its recorded link"))
            for s in wanted.get(e["position"], []):
                s["ok"] = s["digest"] == link
            if report.against == link:
                report.against_position = e["position"]
            report.events += 1
            report.head_position, report.head_digest = e["position"], link
    for position, found in sorted(wanted.items()):
        for s in found:
            s.setdefault("ok", False)
            report.seals.append(s)
            if not s["ok"]:
                report.problems.append((position, f"the seal recorded at {s['seal_position']} does not match the events up to {position}"))
    if report.events != manifest.get("events") or report.head_digest != manifest.get("head_digest"):
        report.problems.append((report.head_position, "the events do not end where the manifest says"))
    report.problems.sort()
    return report


# --------------------------------------------------------------------------- chain of authority


def explain_payment(app: LedgerApp, ref: str) -> dict[str, Any]:
    """The chain of authority behind one payment, read from the stored events themselves.

    Payment -> the approval or adjustment in force for its month -> the verification that
    decision relied on -> the standard in force, with the operator and both times of
    every step. Every missing or broken link is listed under ``flags``.
    """
    from ledger.application import parse_payment_ref
    from ledger.domain import Case, Payment, Standard, case_id, household_id, payment_id, standard_id
    from ledger.errors import NotFound
    from ledger.values import Month, dibao_for, yuan

    case_no, month, issue_no = parse_payment_ref(ref)
    pay_events = list(app.events.get(payment_id(case_no, month, issue_no)))
    if not pay_events:
        raise NotFound(f"no payment {ref}")
    w = app.unit_of_work()
    payment: Payment = w.find(payment_id(case_no, month, issue_no))
    case: Case = w.find(case_id(case_no))
    household = w.find(household_id(case.household_no))
    case_events = list(app.events.get(case_id(case_no)))
    flags: list[str] = []

    def step(e: Any, **more: Any) -> dict[str, Any]:
        return {"event": type(e).__qualname__, "operator": e.operator, "effective": e.effective.isoformat(),
                "recorded_at": e.timestamp.isoformat(), **more}

    issued = pay_events[0]
    chain: dict[str, Any] = {
        "payment": step(issued, ref=payment.ref, month=str(payment.month), kind=payment.kind, gross_fen=payment.gross_fen,
                        offset_fen=payment.offset_fen, amount_fen=payment.amount_fen, persons=payment.persons,
                        status=payment.status, payee_account_ending=payment.payee_account[-4:]),
    }
    if not case.is_monthly:
        flags.append("the case is not a monthly programme")
    decisions = [e for e in case_events if isinstance(e, (Case.Approved, Case.AmountAdjusted, Case.LegacyApproved))
                 and e.timestamp <= issued.timestamp]
    in_force = [e for e in decisions if getattr(e, "first_month", None) or getattr(e, "from_month", None)]
    in_force = [e for e in in_force if (getattr(e, "first_month", None) or e.from_month) <= month]
    decision = in_force[-1] if in_force else None
    if decision is None:
        flags.append(f"no approval or adjustment in force for {month} when the payment was issued")
    else:
        legacy = isinstance(decision, Case.LegacyApproved)
        approver = decision.approver if legacy else decision.operator
        chain["decision"] = step(decision, approver=approver, amount_fen=decision.amount_fen, persons=len(decision.covered),
                                 add_on_fen=getattr(decision, "add_on_fen", 0), verification_no=decision.verification_no,
                                 legacy_reference=getattr(decision, "legacy_reference", None))
        if legacy:
            flags.append(f"the approval was carried over from a legacy system ({decision.legacy_reference}) without the ledger's checks")
        verifications = [e for e in case_events if isinstance(e, Case.Verified)]
        v = verifications[decision.verification_no - 1] if 0 < decision.verification_no <= len(verifications) else None
        if v is None:
            flags.append("no verification behind the decision")
        else:
            chain["verification"] = step(v, no=decision.verification_no, verifier=v.verifier, income_fen=v.income_fen,
                                         assets_ok=v.assets_ok, passed=v.passed, valid_until=v.valid_until.isoformat())
            if not v.passed:
                flags.append(f"verification no. {decision.verification_no} did not pass")
            if v.valid_until < decision.effective:
                flags.append(f"verification no. {decision.verification_no} had expired ({v.valid_until}) when the decision was made")
            if v.effective > decision.effective:
                flags.append(f"verification no. {decision.verification_no} is dated after the decision ({v.effective})")
            if v.timestamp > decision.timestamp:
                flags.append("the verification was recorded after the decision")
            if approver in (v.verifier, v.operator):
                flags.append(f"{approver} both verified and approved (four eyes)")
    programme = case.programme if case.is_monthly else dibao_for(case.area)
    std: Standard | None = w.find(standard_id(programme, case.area))
    amount_std = std.in_force(month) if std else None
    set_events = [e for e in app.events.get(standard_id(programme, case.area)) if isinstance(e, Standard.Set)] if std else []
    setting = [e for e in set_events if e.from_month <= month]
    if amount_std is None:
        flags.append(f"no {programme.value} standard in force in {month}")
    else:
        last = setting[-1] if setting else None
        chain["standard"] = {"programme": programme.value, "area": case.area.value, "amount_fen": amount_std,
                             **(step(last, from_month=str(last.from_month)) if last else {})}
        if decision is not None:
            ceiling = amount_std * len(decision.covered) + getattr(decision, "add_on_fen", 0)
            if payment.gross_fen > ceiling and payment.kind != "top-up":
                flags.append(f"the amount is above the standard in force ({yuan(amount_std)} yuan x {len(decision.covered)} persons)")
    period = case.period_at(month)
    if period is None or period.status != "active":
        flags.append(f"the case is not active in {month} as the record stands now")
    if household is not None and decision is not None:
        for idn in decision.covered:
            m = household.members.get(idn, {})
            if m.get("status") == "deceased" and m.get("until") and Month.of(date_from_iso(m["until"])) < month:
                flags.append(f"a covered person ({idn[:4]}...{idn[-4:]}) died before {month}")
    chain["flags"] = flags
    return chain


def date_from_iso(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text)
