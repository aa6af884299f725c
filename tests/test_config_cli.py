"""Boot configuration and the operator CLI."""
import pytest
import sqlalchemy as sa

import config
from app.extensions import db
from app.models import AIFunction, Plan, Provider, User


def test_production_refuses_to_start_without_keys(monkeypatch):
    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", None)
    monkeypatch.setattr(config.ProductionConfig, "ENCRYPTION_KEY", None)
    from app import create_app

    with pytest.raises(RuntimeError, match="without SECRET_KEY and ENCRYPTION_KEY"):
        create_app("production")


def test_production_cookies_are_secure():
    assert config.ProductionConfig.SESSION_COOKIE_SECURE and config.ProductionConfig.REMEMBER_COOKIE_SECURE


@pytest.mark.parametrize("given,expected", [
    ("postgres://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
    ("postgresql://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_database_url_is_normalised(monkeypatch, given, expected):
    monkeypatch.setenv("DATABASE_URL", given)
    assert config._database_url("sqlite:///default.db") == expected


def test_create_admin_creates_then_resets(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", "--email", "Boss@Example.com", "--password", "first-long-pass"])
    assert result.exit_code == 0 and "Created admin boss@example.com" in result.output
    result = runner.invoke(args=["create-admin", "--email", "boss@example.com", "--password", "second-long-pass",
                                 "--role", "viewer"])
    assert "Updated viewer" in result.output
    with app.app_context():
        user = db.session.scalars(sa.select(User)).one()
        assert user.role == "viewer" and user.check_password("second-long-pass")


def test_create_admin_refuses_a_short_password(app):
    result = app.test_cli_runner().invoke(args=["create-admin", "--email", "a@b.io", "--password", "short"])
    assert result.exit_code != 0 and "at least 10 characters" in result.output


def test_seed_demo_is_idempotent(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert "Demo admin created" in first.output and "admin@example.com /" in first.output
    assert "Demo customer created with 20 credits" in first.output
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0 and "Demo data is in place" in second.output
    with app.app_context():
        count = lambda model: db.session.scalar(sa.select(sa.func.count()).select_from(model))  # noqa: E731
        assert (count(Provider), count(AIFunction), count(Plan), count(User)) == (1, 3, 2, 2)
        customer = db.session.scalars(sa.select(User).where(User.role == "customer")).one()
        assert customer.balance == 20
        provider = db.session.scalars(sa.select(Provider)).one()
        assert provider.key == "local"
        assert all(fn.provider_id == provider.id and fn.enabled for fn in db.session.scalars(sa.select(AIFunction)))
