"""S3 storage behind the storage interface, against moto's S3 server on 127.0.0.1: switching the backend in
the admin sends the next job's files to the bucket (in this process and in a running worker.py), old files stay
readable where they are, and downloads go through a CDN URL or a presigned URL."""
import io

import pytest
import requests

from app import create_app
from app.extensions import db
from app.models import Setting
from app.services import settings, storage
from tests import pipeline as p
from tests.helpers import csrf_token, login, make_user
from tests.images import image_bytes
from tests.test_settings import save_settings, with_settings_view
from tests.workers import WorkerProcess, wait_for

SOURCE = image_bytes(size=(40, 30))


@pytest.fixture
def bucket(s3_bucket):
    return s3_bucket


@pytest.fixture(scope="module")
def web(app):
    return with_settings_view(create_app("testing"))


def owner_of(instance):
    client = instance.test_client()
    with instance.app_context():
        login(client, make_user("admin"))
    return client


def switch_to_s3(owner, endpoint, bucket_name, **extra):
    resp = save_settings(owner, storage__backend="s3", storage__s3_bucket=bucket_name,
                         storage__s3_endpoint_url=endpoint, storage__s3_region="us-east-1",
                         storage__s3_access_key_id="testing", storage__s3_secret_access_key="testing", **extra)
    assert resp.status_code == 302, resp.get_data(as_text=True)


def submit(client):
    resp = client.post("/f/enhance", data={"csrf_token": csrf_token(client), "image": (io.BytesIO(SOURCE), "me.png")},
                       content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return int(resp.headers["Location"].rsplit("/", 1)[1])


def download(client, job_id):
    """The bytes a customer gets from "Download result": served by the app, or via the URL it redirects to."""
    resp = client.get(f"/jobs/{job_id}/output?download=1")
    if resp.status_code == 302:
        resp = requests.get(resp.headers["Location"], timeout=10)
        return resp.status_code, resp.content
    return resp.status_code, resp.data


def output_ref(instance, job_id):
    with instance.app_context():
        return p.job(job_id).output_ref


def input_ref(instance, job_id):
    with instance.app_context():
        return p.job(job_id).input_ref


def test_switching_to_s3_in_the_admin_sends_the_next_output_to_the_bucket(web, s3_endpoint, bucket):
    s3, name = bucket
    with web.app_context():
        p.local_function("enhance", price_per_use=1)
        customer = p.funded_customer(5)
    web_client = web.test_client()
    login(web_client, customer)

    before = submit(web_client)
    p.drain(web)
    assert output_ref(web, before).startswith("fs:")

    switch_to_s3(owner_of(web), s3_endpoint, name)
    after = submit(web_client)
    p.drain(web)
    ref = output_ref(web, after)
    assert ref.startswith(f"s3:{name}/")
    key = ref.split("/", 1)[1]
    stored = s3.get_object(Bucket=name, Key=key)
    assert stored["ContentType"] == "image/png"
    status, data = download(web_client, after)
    assert status == 200 and data == stored["Body"].read()
    # The file written before the switch is still served from local disk.
    status, data = download(web_client, before)
    assert status == 200 and data[:4] == b"\x89PNG"
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]} == {
        key, input_ref(web, after).split("/", 1)[1]}


def test_download_urls_use_the_cdn_when_set_else_a_presigned_url(web, s3_endpoint, bucket):
    s3, name = bucket
    owner = owner_of(web)
    switch_to_s3(owner, s3_endpoint, name)
    with web.app_context():
        ref = storage.save(b"result bytes", ".png")
        assert storage.read(ref) == b"result bytes"
        presigned = storage.url_for_ref(ref)
        named = storage.url_for_ref(ref, download_name="neurapix-enhance-1.png")
        assert storage.url_for_ref(storage.FilesystemStorage(web.config["STORAGE_DIR"]).save(b"x", ".png")) is None
    assert presigned.startswith(f"{s3_endpoint}/{name}/") and "X-Amz-Signature=" in presigned
    assert requests.get(presigned, timeout=10).content == b"result bytes"
    got = requests.get(named, timeout=10)
    assert got.content == b"result bytes"
    assert got.headers["Content-Disposition"] == 'attachment; filename="neurapix-enhance-1.png"'

    assert save_settings(owner, storage__cdn_base_url="https://cdn.example.com/media/").status_code == 302
    with web.app_context():
        assert storage.url_for_ref(ref) == f"https://cdn.example.com/media/{ref.split('/', 1)[1]}"
        # A file from another bucket is not behind this CDN: it keeps a presigned URL.
        other = f"s3:another-bucket/{ref.split('/', 1)[1]}"
        assert storage.url_for_ref(other).startswith(f"{s3_endpoint}/another-bucket/")
        storage.delete(ref)
        with pytest.raises(storage.StorageError, match="NoSuchKey"):
            storage.read(ref)


def test_s3_settings_that_cannot_write_are_refused_and_nothing_changes(web, s3_endpoint):
    resp = save_settings(owner_of(web), storage__backend="s3", storage__s3_bucket="no-such-bucket",
                         storage__s3_endpoint_url=s3_endpoint, storage__s3_access_key_id="testing",
                         storage__s3_secret_access_key="testing")
    assert resp.status_code == 400
    assert "S3 check failed" in resp.get_data(as_text=True) and "NoSuchBucket" in resp.get_data(as_text=True)
    with web.app_context():
        assert settings.get("storage.backend") == "disk" and settings.get("storage.s3_bucket") == ""
        assert db.session.get(Setting, "storage.s3_secret_access_key") is None


def test_running_worker_writes_to_s3_after_the_switch_without_restart(app, s3_endpoint, bucket):
    """The acceptance rule for settings: another web instance saves, the running worker.py obeys on its next job."""
    s3, name = bucket
    owner_instance = with_settings_view(create_app("testing"))
    with app.app_context():
        p.local_function("enhance", price_per_use=1)
        customer = p.funded_customer(5)
    web_client = app.test_client()
    login(web_client, customer)

    def finished(job_id):
        with app.app_context():
            job = p.job(job_id)
            return job.status in ("done", "failed") and job

    with WorkerProcess() as worker:
        first_id = submit(web_client)
        first = wait_for(lambda: finished(first_id), timeout=60, what="the first job")
        assert first.status == "done" and first.output_ref.startswith("fs:")

        switch_to_s3(owner_of(owner_instance), s3_endpoint, name)
        second_id = submit(web_client)
        second = wait_for(lambda: finished(second_id), timeout=60, what="the second job")
        assert second.status == "done", second.error
        assert second.output_ref.startswith(f"s3:{name}/")
        s3.head_object(Bucket=name, Key=second.output_ref.split("/", 1)[1])
        assert worker.alive()
    status, data = download(web_client, second_id)
    assert status == 200 and data[:4] == b"\x89PNG"


def test_files_in_s3_are_handed_out_as_images_with_our_headers(web, s3_endpoint, bucket):
    s3, name = bucket
    switch_to_s3(owner_of(web), s3_endpoint, name)
    with web.app_context():
        p.local_function("enhance", price_per_use=1)
        customer = p.funded_customer(5)
    client = web.test_client()
    login(client, customer)
    job_id = submit(client)
    p.drain(web)
    resp = client.get(f"/jobs/{job_id}/output")
    assert resp.status_code == 302 and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    got = requests.get(resp.headers["Location"], timeout=10)
    assert got.headers["Content-Type"] == "image/png" and got.headers["Content-Disposition"] == "inline"
    assert s3.head_object(Bucket=name, Key=output_ref(web, job_id).split("/", 1)[1])["ContentDisposition"] == "inline"

    # An object some earlier code stored as HTML: the bucket is told to hand it out as an opaque file.
    s3.put_object(Bucket=name, Key="legacy/page.html", Body=b"<script>alert(1)</script>", ContentType="text/html")
    with web.app_context():
        url = storage.url_for_ref(f"s3:{name}/legacy/page.html", None, "text/html")
    assert requests.get(url, timeout=10).headers["Content-Type"] == "application/octet-stream"
