"""Credits: every balance change is one atomic UPDATE plus its ledger row, in the caller's transaction.

The balance can never go below zero (conditional UPDATE and a CHECK); a keyed grant or refund
happens at most once (unique idempotency key).
"""
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import CreditLedger, User


class InsufficientCredits(Exception):
    pass


def debit(user_id, amount, *, reason, kind="debit", job_id=None, actor_id=None):
    """Take `amount` credits or raise InsufficientCredits; returns the new balance."""
    balance = db.session.execute(
        sa.update(User).where(User.id == user_id, User.balance >= amount)
        .values(balance=User.balance - amount).returning(User.balance)
    ).scalar()
    if balance is None:
        raise InsufficientCredits("Not enough credits for this job. Buy more on the pricing page.")
    db.session.add(CreditLedger(user_id=user_id, amount=-amount, balance_after=balance, kind=kind, reason=reason,
                                job_id=job_id, actor_id=actor_id))
    return balance


def grant(user_id, amount, *, reason, kind, idempotency_key=None, job_id=None, payment_id=None, actor_id=None):
    """Add credits; with an idempotency key, a second call changes nothing and returns None."""
    with db.session.begin_nested() as savepoint:
        balance = db.session.execute(
            sa.update(User).where(User.id == user_id).values(balance=User.balance + amount).returning(User.balance)
        ).scalar_one()
        db.session.add(CreditLedger(user_id=user_id, amount=amount, balance_after=balance, kind=kind, reason=reason,
                                    idempotency_key=idempotency_key, job_id=job_id, payment_id=payment_id,
                                    actor_id=actor_id))
        try:
            db.session.flush()
        except IntegrityError:
            # Same key already applied: undo this balance change too.
            savepoint.rollback()
            return None
    return balance


def adjust(user_id, amount, *, reason, actor_id):
    """A staff correction: add (amount > 0) or remove (amount < 0) credits, with a required reason."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("A reason is required for every credit change.")
    if amount == 0:
        raise ValueError("Enter a non-zero number of credits.")
    if amount > 0:
        return grant(user_id, amount, reason=reason, kind="adjust", actor_id=actor_id)
    try:
        return debit(user_id, -amount, reason=reason, kind="adjust", actor_id=actor_id)
    except InsufficientCredits:
        balance = db.session.scalar(sa.select(User.balance).where(User.id == user_id))
        raise ValueError(f"Cannot remove {-amount} credits: the balance is {balance}.") from None


def take_back(user_id, amount, *, reason, idempotency_key, payment_id=None):
    """Remove up to `amount` credits for a refund, never below zero; what was already spent is recorded
    as the user's shortfall (flagged in the admin). Returns (taken, shortfall), or None if already done."""
    with db.session.begin_nested() as savepoint:
        balance = db.session.execute(sa.select(User.balance).where(User.id == user_id).with_for_update()).scalar_one()
        taken = min(balance, amount)
        shortfall = amount - taken
        after = db.session.execute(
            sa.update(User).where(User.id == user_id)
            .values(balance=User.balance - taken, credit_shortfall=User.credit_shortfall + shortfall)
            .returning(User.balance)
        ).scalar_one()
        note = f"{reason} (shortfall {shortfall}: already spent)" if shortfall else reason
        db.session.add(CreditLedger(user_id=user_id, amount=-taken, balance_after=after, kind="refund", reason=note,
                                    idempotency_key=idempotency_key, payment_id=payment_id))
        try:
            db.session.flush()
        except IntegrityError:
            savepoint.rollback()
            return None
    return taken, shortfall

