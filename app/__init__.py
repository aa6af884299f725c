"""The application factory: wires extensions, blueprints, the admin and the CLI."""
import logging
import os

from flask import Flask

from config import INSTANCE_DIR, configs

# Recorded in every backup archive, so an owner knows which release reads it.
__version__ = "0.13.0"


def create_app(config_name=None):
    config_name = config_name or os.environ.get("NEURAPIX_ENV") or "development"
    config_class = configs[config_name]
    config_class.prepare()

    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.from_object(config_class)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:"):
        os.makedirs(app.instance_path, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app import log_redaction

    log_redaction.init_app(app)

    from app import models  # noqa: F401  (registers every table with the metadata)
    from app.extensions import csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)

    # Emails and client webhooks are sent once the transaction that wrote them commits.
    from app.services import app_webhooks, mail, outbox  # noqa: F401  (mail and app_webhooks declare outboxes)

    outbox.init_app(app)

    from app import admin, api, auth, cli, health, security, site, webhooks

    security.init_app(app)
    health.init_app(app)
    auth.init_app(app)
    site.init_app(app)
    webhooks.init_app(app)
    api.init_app(app)
    admin.init_app(app)
    cli.init_app(app)
    return app
