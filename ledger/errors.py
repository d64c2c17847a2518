"""Domain errors: each carries the ids involved and a sentence a clerk understands."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every refusal the ledger makes on purpose."""


class InvalidInput(LedgerError):
    """A value given to the ledger is malformed (a month, an amount, an id...)."""


class NotFound(LedgerError):
    """A case, household, payment or standard the command names does not exist."""


class AlreadyExists(LedgerError):
    """Something with the same natural key (household number, case number) is already recorded."""


class RuleViolation(LedgerError):
    """A business rule would be broken; nothing was written."""


class VerificationRequired(RuleViolation):
    """Rule 1: no approval, adjustment or grant without a passing, valid verification."""


class FourEyesViolation(RuleViolation):
    """Rule 1: the verifier and the approver must be different operators."""


class DuplicatePayment(RuleViolation):
    """Rule 2: at most one net payment per case and benefit month."""


class CaseNotActive(RuleViolation):
    """Rule 3: no payment for a month in which the case is not active."""


class AmountAboveStandard(RuleViolation):
    """Rule 5: a monthly amount above the standard times persons covered (plus add-on)."""


class OverrideRequired(RuleViolation):
    """Rule 5: a temporary grant above ten monthly standards needs an override reason."""


class InvalidTransition(RuleViolation):
    """The case is not in a state that allows this step (e.g. resuming an active case)."""


class ConcurrentChange(LedgerError):
    """Another clerk changed the same record at the same moment, more often than we retry."""
