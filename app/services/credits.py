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
