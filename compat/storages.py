"""django-storages' S3Storage as ``mail.rawstore`` uses it: the boto3 client and bucket
behind a storage, and the object key a storage name is written under.

S3Storage offers no public way to turn a name into its object key (its
``_normalize_name`` is private); the raw store needs the key for what the storage
does not do itself (a presigned POST, a HEAD with the content type, a listing, a
server-side copy). The mapping is the documented one (``location`` + ``/`` + name);
tests/compat/test_storages.py checks it against what S3Storage itself writes, and
fails on an upgrade that changes it.
"""

from __future__ import annotations

import posixpath
from typing import Any


def s3_client(storage: Any) -> Any:
    """The low-level boto3 client of the storage's (per-thread) connection."""
    return storage.connection.meta.client


def s3_bucket(storage: Any) -> str:
    return str(storage.bucket_name)


def s3_prefix(storage: Any) -> str:
    """The storage's ``location`` as a key prefix: "" or "<location>/"."""
    location = str(storage.location or "").strip("/")
    return f"{location}/" if location else ""


def s3_object_key(storage: Any, name: str) -> str:
    """The object key S3Storage writes ``name`` under. A name with a ``..`` part is
    refused, as Storage.save refuses it."""
    parts = name.replace("\\", "/").split("/")
    if ".." in parts or not name.strip("/"):
        raise ValueError(f"not a name inside the storage: {name!r}")
    return s3_prefix(storage) + posixpath.normpath("/".join(parts)).lstrip("/")
