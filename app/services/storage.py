"""File storage for uploads and results behind one small interface: local disk or S3 (any compatible service).

A stored file is named by a ref "<backend>:<path>" ("fs:2025/01/31/ab….png", "s3:<bucket>/<key>"), so files
stay readable from the backend that wrote them after the owner switches backends in the settings.
"""
import mimetypes
import os
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from flask import current_app

from app.services import settings


class StorageError(LookupError):
    pass


# Types a stored file may be served as: images only, never HTML or SVG, whatever a row says.
SERVED_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff"}
OPAQUE = "application/octet-stream"
# Sent with every stored file: no type sniffing, and a file a browser would render as a document anyway gets
# no script and no access to our origin.
SANDBOX_CSP = "default-src 'none'; sandbox"


def served_type(content_type):
    """The Content-Type a stored file is served with: its recorded type if it is an image, else opaque."""
    return content_type if content_type in SERVED_TYPES else OPAQUE


def disposition(filename, attachment):
    return f'{"attachment" if attachment else "inline"}; filename="{filename}"'


def file_headers(filename, attachment):
    """The headers every response that hands out a stored file carries (bytes or a redirect to them)."""
    return {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": SANDBOX_CSP,
            "Content-Disposition": disposition(filename, attachment)}


class Storage(ABC):
    scheme = ""

    @abstractmethod
    def save(self, data, suffix):
        """Store bytes; return the ref."""

    @abstractmethod
    def read(self, ref):
        """The bytes behind a ref this backend wrote."""

    @abstractmethod
    def delete(self, ref):
        """Remove the file; a missing file is not an error."""

    def url(self, ref, download_name=None, content_type=None):
        """A URL a browser may fetch the file from directly, or None when the app must serve the bytes."""
        return None

    @staticmethod
    def new_name(suffix):
        return f"{datetime.now(timezone.utc):%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"


class FilesystemStorage(Storage):
    scheme = "fs"

    def __init__(self, root):
        self.root = Path(root).resolve()

    def _path(self, ref):
        path = (self.root / ref.split(":", 1)[1]).resolve()
        if self.root not in path.parents:
            raise StorageError(f"Refusing a ref outside the storage root: {ref}")
        return path

    def save(self, data, suffix):
        ref = f"{self.scheme}:{self.new_name(suffix)}"
        path = self._path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see half a file
        return ref

    def read(self, ref):
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"Stored file is missing: {ref}") from None

    def delete(self, ref):
        self._path(ref).unlink(missing_ok=True)

    def put_file(self, name, path):
        """Move a finished local file in under `name` (backups); return its ref."""
        ref = f"{self.scheme}:{name}"
        target = self._path(ref)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        shutil.move(path, tmp)
        os.replace(tmp, target)
        return ref

    def open(self, ref):
        """A binary stream of the file, for files too large to hold in memory."""
        try:
            return self._path(ref).open("rb")
        except FileNotFoundError:
            raise StorageError(f"Stored file is missing: {ref}") from None

    def write(self, ref, data):
        """Put bytes back under exactly this ref (a restore brings files home where their refs say)."""
        path = self._path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class S3Storage(Storage):
    """Objects in a bucket through boto3; the ref names its bucket, so a later bucket change keeps old files."""

    scheme = "s3"

    def __init__(self, client, bucket, cdn_base_url="", presign_seconds=3600):
        self.client, self.bucket = client, bucket
        self.cdn_base_url, self.presign_seconds = cdn_base_url, presign_seconds

    def _location(self, ref):
        bucket, _, key = ref.split(":", 1)[1].partition("/")
        if not bucket or not key:
            raise StorageError(f"Malformed S3 ref: {ref}")
        return bucket, key

    def save(self, data, suffix):
        if not self.bucket:
            raise StorageError("The S3 backend is selected but no bucket is set (Admin → Settings → Storage).")
        key = self.new_name(suffix)
        # What a CDN in front of the bucket serves: an image type or an opaque download, shown inline.
        self._call("write to", self.client.put_object, Bucket=self.bucket, Key=key, Body=data,
                   ContentType=served_type(mimetypes.guess_type(f"x{suffix}")[0]), ContentDisposition="inline")
        return f"{self.scheme}:{self.bucket}/{key}"

    def read(self, ref):
        bucket, key = self._location(ref)
        return self._call("read", self.client.get_object, Bucket=bucket, Key=key)["Body"].read()

    def delete(self, ref):
        bucket, key = self._location(ref)
        self._call("delete from", self.client.delete_object, Bucket=bucket, Key=key)

    def put_file(self, name, path):
        """Upload a local file under key `name` (multipart when large, never read whole); return its ref."""
        if not self.bucket:
            raise StorageError("The S3 backend is selected but no bucket is set (Admin → Settings → Storage).")
        self._call("write to", self.client.upload_file, Filename=str(path), Bucket=self.bucket, Key=name)
        os.unlink(path)
        return f"{self.scheme}:{self.bucket}/{name}"

    def open(self, ref):
        bucket, key = self._location(ref)
        return self._call("read", self.client.get_object, Bucket=bucket, Key=key)["Body"]

    def write(self, ref, data):
        bucket, key = self._location(ref)
        self._call("write to", self.client.put_object, Bucket=bucket, Key=key, Body=data)

    def url(self, ref, download_name=None, content_type=None):
        bucket, key = self._location(ref)
        # The CDN fronts the configured bucket only; files left in an earlier bucket get presigned URLs.
        if self.cdn_base_url and bucket == self.bucket and not download_name:
            return f"{self.cdn_base_url}/{quote(key)}"
        # The bucket answers with the type and disposition we choose, not with what the object says.
        served = served_type(content_type or mimetypes.guess_type(key)[0])
        params = {"Bucket": bucket, "Key": key, "ResponseContentType": served,
                  "ResponseContentDisposition": disposition(download_name, True) if download_name else "inline"}
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.presign_seconds)

    def _call(self, verb, method, **kwargs):
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(**kwargs)
        except S3UploadFailedError as exc:
            raise StorageError(f"S3 refused to {verb} {kwargs['Bucket']}/{kwargs.get('Key', '')}: {exc}") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise StorageError(f"S3 refused to {verb} {kwargs['Bucket']}/{kwargs.get('Key', '')}: {code} "
                               f"{exc.response.get('Error', {}).get('Message', '')}".strip()) from None
        except BotoCoreError as exc:
            raise StorageError(f"S3 unreachable while trying to {verb} {kwargs['Bucket']}: {exc}") from None


_clients_lock = threading.Lock()


def _s3_client(region, endpoint_url, key_id, secret):
    """One boto3 client per app and S3 configuration: building one costs tens of milliseconds."""
    import boto3
    from botocore.config import Config

    app = current_app._get_current_object()
    wanted = (region, endpoint_url, key_id, secret)
    cached = app.extensions.get("neurapix_s3")
    if cached is None or cached[0] != wanted:
        with _clients_lock:
            cached = app.extensions.get("neurapix_s3")
            if cached is None or cached[0] != wanted:
                # Custom endpoints (MinIO, moto…) rarely resolve bucket subdomains: address buckets by path there.
                config = Config(signature_version="s3v4", connect_timeout=5, read_timeout=60,
                                retries={"max_attempts": 3, "mode": "standard"},
                                s3={"addressing_style": "path" if endpoint_url else "auto"})
                client = boto3.session.Session().client(
                    "s3", region_name=region or "us-east-1", endpoint_url=endpoint_url or None,
                    aws_access_key_id=key_id or None, aws_secret_access_key=secret or None, config=config)
                cached = app.extensions["neurapix_s3"] = (wanted, client)
    return cached[1]


def s3_backend(values=None):
    """The S3 backend as the settings describe it now (or as `values` would, before they are saved)."""
    values = values or {}

    def pick(key):
        return values[key] if key in values else settings.get(key)

    client = _s3_client(pick("storage.s3_region"), pick("storage.s3_endpoint_url"),
                        pick("storage.s3_access_key_id"), pick("storage.s3_secret_access_key"))
    return S3Storage(client, pick("storage.s3_bucket"), pick("storage.cdn_base_url"), pick("storage.presign_seconds"))


def _backend(scheme):
    if scheme == FilesystemStorage.scheme:
        return FilesystemStorage(current_app.config["STORAGE_DIR"])
    if scheme == S3Storage.scheme:
        return s3_backend()
    raise StorageError(f"No storage backend for {scheme!r} refs")


def writer():
    """The backend new files go to, as chosen in the settings right now."""
    return _backend(S3Storage.scheme if settings.get("storage.backend") == "s3" else FilesystemStorage.scheme)


def _scheme(ref):
    return (ref or "").split(":", 1)[0]


def save(data, suffix):
    return writer().save(data, suffix)


def read(ref):
    return _backend(_scheme(ref)).read(ref)


def delete(ref):
    if _scheme(ref) in (FilesystemStorage.scheme, S3Storage.scheme):
        _backend(_scheme(ref)).delete(ref)


def destination(name):
    """The backend named by a backup destination: "disk" (this server's) or "s3"."""
    return _backend(S3Storage.scheme if name == "s3" else FilesystemStorage.scheme)


def open_ref(ref):
    """A binary stream of a stored file (read it in chunks; close it when done)."""
    return _backend(_scheme(ref)).open(ref)


def write_ref(ref, data):
    _backend(_scheme(ref)).write(ref, data)


def url_for_ref(ref, download_name=None, content_type=None):
    """Where a browser can download the file itself (CDN or presigned URL), or None: then serve read(ref)."""
    return _backend(_scheme(ref)).url(ref, download_name, content_type)


def check_settings(values):
    """Before storage settings are saved: when they send new files to S3 and differ from the saved ones,
    write, read back and delete a small object with them. StorageError says what failed."""
    keys = [d.key for d in settings.DEFINITIONS if d.group == "storage"]
    if values.get("storage.backend") != S3Storage.scheme or all(values[k] == settings.get(k) for k in keys):
        return
    backend = s3_backend(values)
    ref = backend.save(b"neurapix storage check", ".txt")
    try:
        if backend.read(ref) != b"neurapix storage check":
            raise StorageError("The bucket returned different bytes than were written.")
    finally:
        backend.delete(ref)
