"""Operator commands: flask create-admin, flask seed-demo, flask rotate-keys, flask backup …, flask export …."""
import os
import secrets

import click
import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction, Page, Plan, Prompt, Provider
from app.models.users import STAFF_ROLES
from app.services import accounts, backup, credits, crypto, exports, passwords, settings

# RFC 2606 example domain: the login form's email check (services.accounts.normalise_email) accepts it,
# unlike special-use names such as .local.
DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_CUSTOMER_EMAIL = "customer@example.com"
DEMO_CUSTOMER_CREDITS = 20

DEMO_FUNCTIONS = [
    {"key": "enhance", "name": "Enhance", "priority": 30, "price_per_use": 1,
     "description": "Auto-contrast and sharpening that make a dull photo crisp.",
     "provider_config": {"operation": "enhance"}},
    {"key": "upscale", "name": "Upscale ×2", "priority": 20, "price_per_use": 2,
     "description": "Doubles width and height with high-quality Lanczos resampling.",
     "provider_config": {"operation": "upscale", "params": {"scale": 2}}},
    {"key": "hdr", "name": "HDR look", "priority": 10, "price_per_use": 2,
     "description": "Local tone mapping that lifts shadows and tames highlights.",
     "provider_config": {"operation": "hdr"}},
]

# The FAQ and the pages the site footer links to (services.gallery.FOOTER_SLUGS): placeholders the owner edits
# under Content → Pages. Created once; an edited or deleted page is never overwritten.
DEMO_PAGES = [
    {"slug": "faq", "title": "Frequently asked questions", "html_content":
        "<h2>How do credits work?</h2><p>Each tool costs a number of credits per image, shown on its page. "
        "Buy a pack once or subscribe for credits every month.</p>"
        "<h2>What if a job fails?</h2><p>You get the credits back automatically, and the job page says so.</p>"
        "<h2>Which files can I upload?</h2><p>JPEG, PNG and WebP images; each tool shows its size limit.</p>"
        "<h2>Who sees my images?</h2><p>Only you and our support team, unless you share a result to the "
        "public showcase yourself. You can remove it again at any time.</p>"},
    {"slug": "terms", "title": "Terms of service", "html_content":
        "<p>These are the demo terms. Replace them with your own under Admin → Content → Pages.</p>"},
    {"slug": "privacy", "title": "Privacy policy", "html_content":
        "<p>This is the demo privacy policy. Replace it with your own under Admin → Content → Pages.</p>"},
    {"slug": "contact", "title": "Contact us", "html_content":
        "<p>Write to our support team; we answer within one working day.</p>"},
]

DEMO_PROMPTS = [
    {"title": "Crisp product shot", "category": "product", "tags": "product,sharp", "function_key": "enhance",
     "prompt_text": "Clean studio product photo, neutral background, crisp edges", "is_featured": True},
    {"title": "Print-ready portrait", "category": "portrait", "tags": "portrait,print", "function_key": "upscale",
     "prompt_text": "Sharp portrait at twice the size, natural skin texture", "is_featured": True},
    {"title": "Sunset glow", "category": "landscape", "tags": "landscape,sunset", "function_key": "hdr",
     "prompt_text": "Golden sunset with lifted shadows and balanced sky", "is_featured": False},
]

DEMO_PLANS = [
    {"name": "Starter pack", "kind": "pack", "price": 500, "credits": 50, "sort_order": 1,
     "description": "50 credits, never expire."},
    {"name": "Pro monthly", "kind": "monthly", "price": 1900, "credits": 300, "sort_order": 2,
     "description": "300 credits every month."},
]


def _save_staff(email, password, role):
    """Create the staff account, or reset its password and role when it exists."""
    user = accounts.find_by_email(email)
    if user is None:
        user = accounts.create_user(email, password, role=role)
        created = True
    else:
        accounts.check_password_policy(password, user.email)
        user.set_password(password)
        user.role, user.is_banned, created = role, False, False
        accounts.revoke_sessions(user, None, "password change")
    db.session.commit()
    return user, created


# The admin lists `flask export` offers (CLI name → admin endpoint): the same list, columns and order.
EXPORT_LISTS = {"users": "users", "payments": "payments", "jobs": "jobs", "job-logs": "job_logs",
                "ledger": "ledger", "audit": "audit", "orders": "orders"}


def init_app(app):
    init_backup_commands(app)
    init_export_command(app)

    @app.cli.command("analytics-backfill")
    @click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First UTC day to rebuild (default: all).")
    @click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day to rebuild (default: all).")
    def analytics_backfill(since, until):
        """Rebuild the dashboard's daily rollups from the jobs and payments tables."""
        from app.services import analytics

        rebuilt = analytics.backfill(since and since.date(), until and until.date())
        click.echo(f"Rebuilt {rebuilt['jobs']} day(s) of job rollups and {rebuilt['payments']} day(s) of "
                   f"payment rollups.")

    @app.cli.command("create-admin")
    @click.option("--email", required=True)
    @click.option("--password", required=True)
    @click.option("--role", type=click.Choice(STAFF_ROLES), default="admin", show_default=True)
    def create_admin(email, password, role):
        """Create a staff account (or reset its password and role)."""
        try:
            email = accounts.normalise_email(email)
        except accounts.AccountError as exc:
            raise click.BadParameter(str(exc), param_hint="--email") from None
        problem = passwords.policy_error(password, email)
        if problem:
            raise click.BadParameter(problem, param_hint="--password")
        user, created = _save_staff(email, password, role)
        click.echo(f"{'Created' if created else 'Updated'} {user.role} {user.email}.")

    @app.cli.command("rotate-keys")
    def rotate_keys():
        """Re-encrypt every stored secret under the newest ENCRYPTION_KEY (the first listed).

        Rotate by putting a new key in front (ENCRYPTION_KEY=new,old), running this, then dropping old.
        """
        providers = db.session.scalars(sa.select(Provider).where(Provider.secrets.is_not(None))).all()
        for provider in providers:
            provider.secrets = crypto.rotate(provider.secrets)
        rotated_settings = settings.rotate_secrets()
        db.session.commit()
        click.echo(f"Re-encrypted the secrets of {len(providers)} provider(s) and {rotated_settings} secret "
                   f"setting(s) under the newest key.")

    @app.cli.command("seed-demo")
    def seed_demo():
        """Idempotent demo data: a Local provider, three functions, two plans, the FAQ and footer pages, a few
        gallery prompts, a demo customer and admin."""
        provider = db.session.scalars(sa.select(Provider).where(Provider.name == "Local (Pillow)")).first()
        if provider is None:
            provider = Provider(key="local", name="Local (Pillow)", enabled=True,
                                config={"timeout": 60, "retries": 0})
            db.session.add(provider)
            db.session.flush()
        for spec in DEMO_FUNCTIONS:
            if db.session.scalars(sa.select(AIFunction).where(AIFunction.key == spec["key"])).first() is None:
                db.session.add(AIFunction(enabled=True, provider_id=provider.id, **spec))
        for spec in DEMO_PLANS:
            if db.session.scalars(sa.select(Plan).where(Plan.name == spec["name"])).first() is None:
                db.session.add(Plan(**spec))
        for spec in DEMO_PAGES:
            if db.session.scalars(sa.select(Page).where(Page.slug == spec["slug"])).first() is None:
                db.session.add(Page(is_published=True, **spec))
        if db.session.scalar(sa.select(sa.func.count()).select_from(Prompt)) == 0:
            db.session.flush()
            for n, spec in enumerate(DEMO_PROMPTS):
                spec = dict(spec)
                fn = db.session.scalars(sa.select(AIFunction).where(AIFunction.key == spec.pop("function_key"))).first()
                db.session.add(Prompt(function_id=fn and fn.id, sort_order=n, **spec))
        db.session.commit()

        if accounts.find_by_email(DEMO_CUSTOMER_EMAIL) is None:
            password = secrets.token_urlsafe(12)
            customer = accounts.create_user(DEMO_CUSTOMER_EMAIL, password)
            credits.grant(customer.id, DEMO_CUSTOMER_CREDITS, kind="grant", reason="Demo credits")
            db.session.commit()
            click.echo(f"Demo customer created with {DEMO_CUSTOMER_CREDITS} credits: {DEMO_CUSTOMER_EMAIL} / {password}")
        if accounts.find_by_email(DEMO_ADMIN_EMAIL) is None:
            password = secrets.token_urlsafe(12)
            _save_staff(DEMO_ADMIN_EMAIL, password, "admin")
            click.echo(f"Demo admin created. Log in at /admin with {DEMO_ADMIN_EMAIL} / {password}")
        else:
            click.echo(f"Demo data is in place. Admin login: {DEMO_ADMIN_EMAIL} (password shown when it was "
                       f"created; reset it with: flask create-admin --email {DEMO_ADMIN_EMAIL} --password …)")


def init_backup_commands(app):
    @app.cli.group("backup")
    def backup_group():
        """Portable backups: create, list, verify and restore archives (see README → Backups)."""

    @backup_group.command("create")
    @click.option("--with-files", is_flag=True, help="Also carry the stored job inputs and outputs.")
    @click.option("--to", "destination", type=click.Choice(("local", "s3")),
                  help="local: this server's disk (STORAGE_DIR/backups); s3: the bucket set in Settings → Storage. "
                       "Default: the Backups setting.")
    def create(with_files, destination):
        """Make a backup archive now and store it."""
        try:
            made = backup.make_now(with_files=with_files,
                                   destination={"local": "disk"}.get(destination, destination))
        except backup.BackupError as exc:
            raise click.ClickException(str(exc)) from None
        if made.status != "ok":
            raise click.ClickException(f"Backup {made.name} failed: {made.error}")
        click.echo(f"Backup {made.name}: {made.total_rows} rows, {backup.human_size(made.size_bytes)}, "
                   f"stored at {made.ref}")
        if made.ref.startswith("fs:"):
            click.echo(f"File: {os.path.join(app.config['STORAGE_DIR'], made.ref[3:])}")

    @backup_group.command("list")
    def list_backups():
        """The backups this server has made, newest first."""
        rows = backup.recent(limit=1000)
        if not rows:
            click.echo("No backups yet: make one with `flask backup create`.")
        for b in rows:
            click.echo(f"{b.id:>5}  {b.created_at:%Y-%m-%d %H:%M}  {b.status:<7} {b.trigger:<8} "
                       f"{backup.human_size(b.size_bytes):>9}  {b.total_rows:>10} rows  {b.ref or b.error or ''}")

    @backup_group.command("verify")
    @click.argument("archive")
    def verify(archive):
        """Check every checksum of an archive (a file path or a stored ref)."""
        try:
            manifest = backup.verify(archive)
        except backup.BackupError as exc:
            raise click.ClickException(str(exc)) from None
        files = manifest["files"]
        click.echo(f"OK: {len(manifest['tables'])} tables, {sum(t['rows'] for t in manifest['tables'])} rows"
                   + (f", {files['count']} files" if files else "")
                   + f"; revision {manifest['alembic_revision']}, made {manifest['created_at']}.")

    @backup_group.command("restore")
    @click.argument("archive")
    @click.option("--skip-files", is_flag=True, help="Restore the database only, not the stored files.")
    def restore(archive, skip_files):
        """Restore an archive into this EMPTY database, migrated to the archive's revision."""
        try:
            manifest = backup.restore(archive, with_files=not skip_files)
        except backup.BackupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Restored {sum(t['rows'] for t in manifest['tables'])} rows in {len(manifest['tables'])} "
                   f"tables" + (f" and {manifest['files_restored']} files" if "files_restored" in manifest else "")
                   + f" from a backup made {manifest['created_at']}.")
        for ref, why in manifest.get("files_failed", []):
            click.echo(f"Not put back: {ref}: {why}", err=True)
        if manifest.get("files_failed"):
            raise click.ClickException(f"The database is restored, but {len(manifest['files_failed'])} stored "
                                       f"file(s) could not be put back (listed above): copy them by hand.")


def init_export_command(app):
    @app.cli.command("export")
    @click.argument("list_name", metavar="LIST", type=click.Choice(tuple(EXPORT_LISTS)))
    @click.option("--format", "fmt", type=click.Choice(tuple(exports.FORMATS)), default="csv", show_default=True)
    @click.option("--since", type=click.DateTime(("%Y-%m-%d",)), help="From this UTC day on (YYYY-MM-DD).")
    @click.option("--until", type=click.DateTime(("%Y-%m-%d",)), help="Up to and including this UTC day.")
    @click.option("--status", help="Only rows with this status (jobs, payments, orders).")
    @click.option("--output", type=click.Path(dir_okay=False, writable=True), default="-",
                  help="Write to this file instead of standard output.")
    def export(list_name, fmt, since, until, status, output):
        """Export an admin list as CSV or JSON Lines, exactly as the admin's Export does (audited)."""
        from app.admin import exportable

        view = exportable(app)[EXPORT_LISTS[list_name]]
        since, until = since and since.date(), until and until.date()
        try:
            where = exports.filter_clauses(view.model, since, until, status)
        except exports.ExportError as exc:
            raise click.ClickException(f"{list_name}: {exc}") from None
        filters = {key: value for key, value in
                   (("since", since and since.isoformat()), ("until", until and until.isoformat()),
                    ("status", status)) if value}
        lines = view.export_lines(fmt, view.export_query().filter(*where), filters, exports.CLI_ACTOR)
        with click.open_file(output, "wb") as out:
            for line in lines:
                out.write(line.encode("utf-8"))
