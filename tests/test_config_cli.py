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


def _production_keys(monkeypatch, secret_key, encryption_key):
    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", secret_key)
    monkeypatch.setattr(config.ProductionConfig, "ENCRYPTION_KEY", encryption_key)
    from app import create_app

    return create_app


def test_production_refuses_a_secret_key_shorter_than_32_bytes(monkeypatch):
    from cryptography.fernet import Fernet

    create_app = _production_keys(monkeypatch, "a", Fernet.generate_key().decode())
    with pytest.raises(RuntimeError, match=r"SECRET_KEY must be at least 32 bytes; make one with python -c") as exc:
        create_app("production")
    assert "secrets.token_hex(32)" in str(exc.value) and "ENCRYPTION_KEY" not in str(exc.value)


@pytest.mark.parametrize("encryption_key", ["not-a-fernet-key", "short", ",", "{good},garbage"])
def test_production_refuses_an_encryption_key_that_is_not_a_fernet_key_list(monkeypatch, encryption_key):
    from cryptography.fernet import Fernet

    encryption_key = encryption_key.replace("{good}", Fernet.generate_key().decode())
    create_app = _production_keys(monkeypatch, "s" * 32, encryption_key)
    with pytest.raises(RuntimeError, match="ENCRYPTION_KEY must be one or more Fernet keys") as exc:
        create_app("production")
    assert "Fernet.generate_key()" in str(exc.value)


def test_production_starts_with_good_keys_and_trusted_hosts_from_the_environment(monkeypatch, app, database_url):
    from cryptography.fernet import Fernet

    monkeypatch.setattr(config.ProductionConfig, "SQLALCHEMY_DATABASE_URI", config._database_url(database_url))
    keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    monkeypatch.setattr(config.ProductionConfig, "TRUSTED_HOSTS", config._host_list("www.example.com, .example.org"))
    create_app = _production_keys(monkeypatch, "s" * 32, keys)
    production = create_app("production")
    assert production.config["TRUSTED_HOSTS"] == ["www.example.com", ".example.org"]
    client = production.test_client()
    assert client.get("/static/css/site.css", base_url="https://www.example.com").status_code == 200
    assert client.get("/static/css/site.css", base_url="https://shop.example.org").status_code == 200
    assert client.get("/static/css/site.css", base_url="https://evil.example").status_code == 400
