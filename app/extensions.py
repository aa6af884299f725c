"""Flask extensions, created unbound and wired in create_app.

Keeping them here lets models, services and views import them without import cycles.
"""
import sqlalchemy as sa
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

# Constraint names are fixed so Alembic migrations read the same on PostgreSQL and SQLite.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

db = SQLAlchemy(metadata=metadata)
migrate = Migrate(render_as_batch=True)  # batch mode: SQLite cannot ALTER constraints in place
login_manager = LoginManager()
csrf = CSRFProtect()
# Login throttling (per IP on the route, per account in services.throttle): Redis when REDIS_URL is set, so
# every web process shares the counters; memory otherwise (see config.RATELIMIT_STORAGE_URI).
limiter = Limiter(key_func=get_remote_address, key_prefix="neurapix")
