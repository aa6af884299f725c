"""The owner in a real browser: switch a function's provider, fix a JSON config, test the provider."""
import os

import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction
from tests import pipeline as p
from tests.conftest import ARTIFACTS
from tests.contract_servers import ReplicateServer
from tests.helpers import browser_login, make_user


def _type_into_editor(page, text):
    page.click(".CodeMirror")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def test_owner_switches_provider_fixes_json_and_tests_it(app, live_server, browser_page):
    with ReplicateServer(token="r8-browser") as server:
        with app.app_context():
            fn = p.local_function("restore", operation="enhance")
            replicate = p.replicate_provider(server)
            make_user("admin", email="owner@example.com", password="owner-password")
            fn_id, replicate_id = fn.id, replicate.id
        page = browser_page
        browser_login(page, live_server, "owner@example.com", "owner-password")

        page.goto(f"{live_server}/admin/functions/edit/?id={fn_id}")
        # Flask-Admin's dropdown is a Select2 widget: open it and pick like a person would.
        page.click("#s2id_provider a.select2-choice")
        page.click(".select2-result-label:has-text('Replicate')")
        assert page.eval_on_selector("select#provider", "s => s.value") == str(replicate_id)
        # The schema panel follows the dropdown: Replicate's fields are documented now.
        page.wait_for_selector("text=input_key")

        _type_into_editor(page, '{"model": "acme/restore", "params": {"scale": 2}')
        status = page.locator(".json-editor-status").first
        assert "Valid JSON" not in status.inner_text()
        page.click("input[type=submit][value=Save]")
        assert "/edit/" in page.url  # the browser refused to send invalid JSON

        _type_into_editor(page, '{"model": "acme/restore", "params": {"scale": 2}}')
        assert "Valid JSON" in status.inner_text()
        page.click("input[type=submit][value=Save]")
        page.wait_for_url("**/admin/functions/")
        with app.app_context():
            saved = db.session.scalars(sa.select(AIFunction).where(AIFunction.id == fn_id)).one()
            assert saved.provider_id == replicate_id
            assert saved.provider_config == {"model": "acme/restore", "params": {"scale": 2}}

        page.goto(f"{live_server}/admin/functions/edit/?id={fn_id}")
        page.click("#provider-test-run")
        outcome = page.wait_for_selector("#provider-test-outcome")
        text = outcome.inner_text()
        assert "success" in text and "Latency:" in text and " ms" in text
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "admin-provider-test.png"), full_page=True)
        assert any(r["path"] == "/v1/models/acme/restore/predictions" for r in server.requests)
