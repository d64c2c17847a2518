"""Readable sentences for the events of the timeline (for account history and audit trails)."""

from __future__ import annotations

import json
from typing import Any

from ledger.values import mask_id, yuan


_META = {"originator_id", "originator_version", "timestamp", "originator_topic", "operator", "effective"}


def _plain(obj: dict[str, Any]) -> Any:
    # Values stored with a transcoding ({"_type_": "month", "_data_": "2023-01"}) read as their text.
    if set(obj) == {"_type_", "_data_"}:
        return obj["_data_"]
    return obj


def detail(stored_json: str | bytes | memoryview) -> dict[str, Any]:
    """The business fields of a stored event (its JSON as written to the event store)."""
    if isinstance(stored_json, memoryview):  # PostgreSQL's bytea
        stored_json = stored_json.tobytes()
    return {k: v for k, v in json.loads(stored_json, object_hook=_plain).items() if k not in _META}


def _persons(detail: dict[str, Any]) -> str:
    n = len(detail.get("covered", []))
    return f"{n} person" + ("" if n == 1 else "s")


def describe(kind: str, d: dict[str, Any]) -> str:
    """One sentence a clerk understands, from an event's kind and business fields."""
    match kind:
        case "Household.Registered":
            return (
                f"Household {d['number']} registered in {d['community']} ({d['area']}) "
                f"with {len(d['members'])} members; paid to {d['payee_name']}"
            )
        case "Household.MemberAdded":
            m = d["member"]
            return f"Member {m['name']} ({mask_id(m['id_number'])}, {m['relation']}) added"
        case "Household.MemberRemoved":
            return f"Member {mask_id(d['id_number'])} removed: {d['reason']}"
        case "Household.MemberDeceased":
            return f"Member {mask_id(d['id_number'])} recorded as deceased"
        case "Household.AreaChanged":
            return f"Household moved to a {d['area']} area"
        case "Household.AccountChanged":
            return f"Payee changed to {d['payee_name']}, account ending {d['payee_account'][-4:]}"
        case "Standard.Created":
            return f"Standard for {d['programme']} in {d['area']} areas opened"
        case "Standard.Set":
            return f"Standard {d['programme']} ({d['area']}) set to {yuan(d['amount_fen'])} yuan per person from {d['from_month']}"
        case "Case.Applied":
            single = f", single-person inclusion of {mask_id(d['single_person'])}" if d.get("single_person") else ""
            return f"Application {d['case_no']} for {d['programme']} via {d['channel']}{single}"
        case "Case.Verified":
            result = "passed" if d["passed"] else "did not pass"
            assets = "assets within limits" if d["assets_ok"] else "assets above limits"
            return (
                f"Verification by {d['verifier']} {result}: per-capita income {yuan(d['income_fen'])} yuan, "
                f"{assets}; valid until {d['valid_until']}"
            )
        case "Case.Approved":
            add_on = f" incl. add-on {yuan(d['add_on_fen'])} ({d['add_on_reason']})" if d.get("add_on_fen") else ""
            return (
                f"Approved {yuan(d['amount_fen'])} yuan a month for {_persons(d)} from {d['first_month']}{add_on}, "
                f"on verification no. {d['verification_no']}"
            )
        case "Case.LegacyApproved":
            return (
                f"Approval carried over from the legacy system ({d['legacy_reference']}, approved by {d['approver']}): "
                f"{yuan(d['amount_fen'])} yuan a month for {_persons(d)} from {d['first_month']}"
            )
        case "Seal.Recorded":
            return f"Record sealed up to position {d['position']}: digest {d['digest']}"
        case "Case.Rejected":
            return f"Rejected: {d['reason']}"
        case "Case.AmountAdjusted":
            return (
                f"Amount changed to {yuan(d['amount_fen'])} yuan a month for {_persons(d)} from {d['from_month']}, "
                f"on verification no. {d['verification_no']}"
            )
        case "Case.Suspended":
            return f"Suspended from {d['from_month']}: {d['reason']}"
        case "Case.Resumed":
            return f"Resumed from {d['from_month']}"
        case "Case.Terminated":
            return f"Terminated from {d['from_month']}: {d['reason']}"
        case "Case.GrantApproved":
            override = f" (override: {d['override_reason']})" if d.get("override_reason") else ""
            return (
                f"Temporary grant approved: {d['grant_type']}, {yuan(d['amount_fen'])} yuan, {d['reason']}{override}, "
                f"on verification no. {d['verification_no']}"
            )
        case "Case.GrantPaid":
            return f"Temporary grant paid to {d['payee_name']}, account ending {d['payee_account'][-4:]}"
        case "Payment.Issued":
            kind = "" if d.get("kind", "regular") == "regular" else f" ({d['kind']})"
            offset = f", {yuan(d['offset_fen'])} of it offset against overpayment" if d.get("offset_fen") else ""
            return (
                f"Payment {d['ref']} issued{kind}: {yuan(d['gross_fen'])} yuan for {d['month']}, "
                f"{d['persons']} persons{offset}"
            )
        case "Case.OverpaymentEstablished":
            return f"Overpayment of {yuan(d['amount_fen'])} yuan established for {d['month']}: {d['cause']}"
        case "Case.OverpaymentCancelled":
            return f"Overpayment of {yuan(d['amount_fen'])} yuan for {d['month']} cancelled: {d['cause']}"
        case "Case.OverpaymentRecovered":
            how = "refunded by the household" if d["method"] == "refund" else "offset against a payment"
            return f"Overpayment of {yuan(d['amount_fen'])} yuan recovered, {how} ({d['reference']})"
        case "Case.RecoveryReversed":
            # Its payment was returned by the bank, or the debt the offset recovered was cancelled
            # (the payment's own line says which): the event does not say, so neither does this.
            return f"Offset of {yuan(d['amount_fen'])} yuan against payment {d['reference']} reversed"
        case "Payment.OffsetReleased":
            return f"{yuan(d['amount_fen'])} yuan of the offset released: the debt it recovered was cancelled; owed again"
        case "Payment.Settled":
            return "Payment settled by the bank"
        case "Payment.Returned":
            return f"Payment returned by the bank: {d['reason']}"
        case "PayrollBatch.Started":
            return f"Payroll batch {d['ref']} started for {d['month']}"
        case "PayrollBatch.PaymentsAdded":
            amount = sum(t.get("amount_fen", 0) for t in d["totals"].values())
            return f"{len(d['refs'])} payments added to the batch, {yuan(amount)} yuan"
        case "PayrollBatch.Completed":
            return "Payroll batch completed"
        case "PayrollBatch.Approved":
            return "Payroll batch approved for the bank"
        case "PayrollBatch.Exported":
            return f"Bank file {d['file_name']} exported: {d['lines']} lines, {yuan(d['amount_fen'])} yuan (sha256 {d['sha256'][:12]})"
        case "BankFile.Loaded":
            bad = sum(1 for x in d["lines"] if x["outcome"] == "exception")
            return f"Bank results {d['file_name']} loaded: {len(d['lines'])} lines, {bad} exceptions"
        case "BankFile.ExceptionResolved":
            return f"Bank result line {d['line']} resolved: {d['note']}"
    return kind
