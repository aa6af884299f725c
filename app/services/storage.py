"""File storage for uploads and results behind one small interface.

A stored file is named by a ref "<backend>:<path>", so files stay readable from the backend that
wrote them after the owner switches backends. The filesystem backend ships now.
"""
import os
import uuid
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app


class StorageError(LookupError):
    pass


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


def _backends():
    return {FilesystemStorage.scheme: FilesystemStorage(current_app.config["STORAGE_DIR"])}


def writer():
    """The backend new files go to."""
    return _backends()[FilesystemStorage.scheme]


def save(data, suffix):
    return writer().save(data, suffix)


def read(ref):
    scheme = (ref or "").split(":", 1)[0]
    backend = _backends().get(scheme)
    if backend is None:
        raise StorageError(f"No storage backend for {ref!r}")
    return backend.read(ref)


def delete(ref):
    backend = _backends().get((ref or "").split(":", 1)[0])
    if backend is not None:
        backend.delete(ref)
