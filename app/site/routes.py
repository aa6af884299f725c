"""Customer page routes: thin views over services.catalog and the user's own records."""
import sqlalchemy as sa
from flask import abort, render_template, request
from flask_login import current_user, login_required

from app.extensions import db
from app.models import CreditLedger
from app.services import catalog
from app.site import bp

LEDGER_PAGE_SIZE = 20


@bp.route("/")
def index():
    return render_template("site/index.html", functions=catalog.visible_functions())


@bp.route("/f/<key>")
def function(key):
    fn = catalog.visible_function(key)
    if fn is None:
        abort(404)
    return render_template("site/function.html", fn=fn)


@bp.route("/pricing")
def pricing():
    return render_template("site/pricing.html", plans=catalog.public_plans())


@bp.route("/account")
@login_required
def account():
    page = max(request.args.get("page", 1, type=int), 1)
    ledger = db.paginate(
        sa.select(CreditLedger).where(CreditLedger.user_id == current_user.id).order_by(CreditLedger.id.desc()),
        page=page, per_page=LEDGER_PAGE_SIZE, error_out=False,
    )
    return render_template("site/account.html", ledger=ledger)
