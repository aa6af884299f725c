"""Migrations: upgrade an empty database to head, down to base and up again; models match them."""
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app import create_app
from app.extensions import db
from tests.conftest import create_database, drop_database


def _tables(engine):
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


@pytest.fixture
def empty_postgres(monkeypatch):
    name = f"neurapix_migr_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    monkeypatch.setenv("TEST_DATABASE_URL", url)
    yield url
    drop_database(name)


@pytest.fixture
def empty_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_DATABASE_URL", f"sqlite:///{tmp_path / 'neurapix.db'}")


@pytest.mark.parametrize("database", ["empty_postgres", "empty_sqlite"])
def test_upgrade_downgrade_upgrade(request, database):
    request.getfixturevalue(database)
    app = create_app("testing")
    with app.app_context():
        upgrade()
        assert {"users", "ai_functions", "providers", "jobs", "credit_ledger", "audit_log"} <= _tables(db.engine)
        downgrade(revision="base")
        assert _tables(db.engine) == set()
        upgrade()
        assert len(_tables(db.engine)) == len(db.metadata.tables)
        # The models and the committed revisions describe the same schema.
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
        db.session.remove()
        db.engine.dispose()
