"""The raw store on S3 (``MAIL_STORAGE=s3``): the mail and archive storages of
django-storages (``STORAGES["default"]`` and ``["archive"]``, a bucket and prefix each).

Raw mail is one content-addressed object per mail (``<sha256[:2]>/<sha256>.eml``): an
object is durable when its PUT returns, so there is nothing to batch. SES's own objects
(written by a receipt rule under the mail prefix) keep the key SES gave them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import IO, Any

from botocore.exceptions import ClientError
from django.core.files.base import ContentFile, File

from compat.storages import s3_bucket, s3_client, s3_object_key, s3_prefix
from mail.rawstore.base import ARCHIVE, MAIL, ObjectStat, RawStore, StoredObject, is_raw_key
from mail.rawstore.local import raw_key


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") in ("NoSuchKey", "404", "NotFound")


class S3RawStore(RawStore):
    writes_in_parallel = True
    direct_uploads = True
    direct_downloads = True

    def __init__(self, mail: Any, archive: Any) -> None:
        self._storages = {MAIL: mail, ARCHIVE: archive}

    def _where(self, side: str, key: str) -> tuple[Any, str, str]:
        """(client, bucket, object key) of a key on a side."""
        storage = self._storages[side]
        return s3_client(storage), s3_bucket(storage), s3_object_key(storage, key)

    # --- Raw mail -----------------------------------------------------------------------

    def store_batch(self, raws: list[bytes]) -> list[tuple[str, str]]:
        stored = []
        for raw in raws:
            sha = hashlib.sha256(raw).hexdigest()
            self.object_put(raw_key(sha), raw, len(raw))
            stored.append((raw_key(sha), sha))
        return stored

    def sync(self, keys: list[str]) -> None:
        """Nothing to do: an object is durable when its PUT returns."""

    def discard(self, key: str) -> None:
        """Nothing: a content-addressed object may be another delivery's."""

    def walk(self, prefix: str = "") -> Iterator[StoredObject]:
        storage = self._storages[MAIL]
        base = s3_prefix(storage)
        paginator = s3_client(storage).get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=s3_bucket(storage), Prefix=base + prefix.lstrip("/")):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(base) :]
                if not key.endswith("/") and is_raw_key(key):
                    yield StoredObject(key, obj["LastModified"])

    def _open(self, side: str, key: str) -> IO[bytes]:
        # S3Storage.open raises FileNotFoundError for a missing object; past its
        # max_memory_size the download spills to disk.
        fh: IO[bytes] = self._storages[side].open(key, "rb")
        return fh

    def _exists(self, side: str, key: str) -> bool:
        return bool(self._storages[side].exists(key))

    def _delete(self, side: str, key: str) -> None:
        self._storages[side].delete(key)

    def _copy(self, key: str, source: str, target: str) -> None:
        """A server-side copy: the bytes never pass through this process."""
        _, source_bucket, source_key = self._where(source, key)
        client, bucket, target_key = self._where(target, key)
        client.copy({"Bucket": source_bucket, "Key": source_key}, bucket, target_key)

    # --- Named objects --------------------------------------------------------------------

    def object_put(self, key: str, content: bytes | IO[bytes], size: int) -> None:
        storage = self._storages[MAIL]
        if not storage.exists(key):  # an S3 object appears whole or not at all
            storage.save(key, ContentFile(content) if isinstance(content, bytes) else File(content))

    def object_save(self, key: str, content: IO[bytes]) -> None:
        self._storages[MAIL].save(key, File(content, name=os.path.basename(key)))

    def object_open(self, key: str, *, size: int | None = None) -> IO[bytes]:
        """The object's body as a stream. Not ``storage.open``, which downloads the whole
        object first (into memory up to its max_memory_size)."""
        client, bucket, object_key = self._where(MAIL, key)
        try:
            body: IO[bytes] = client.get_object(Bucket=bucket, Key=object_key)["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from exc
            raise
        return body

    def object_stat(self, key: str) -> ObjectStat | None:
        client, bucket, object_key = self._where(MAIL, key)
        try:
            head = client.head_object(Bucket=bucket, Key=object_key)
        except ClientError:
            return None
        return ObjectStat(int(head["ContentLength"]), str(head.get("ContentType", "")).lower())

    def object_delete(self, key: str) -> None:
        self._storages[MAIL].delete(key)

    def upload_form(self, key: str, *, size: int, content_type: str, expires_in: int) -> tuple[str, dict[str, str]]:
        client, bucket, object_key = self._where(MAIL, key)
        post = client.generate_presigned_post(
            Bucket=bucket,
            Key=object_key,
            Fields={"Content-Type": content_type},
            Conditions=[
                # S3 refuses any body that is not exactly the declared size.
                ["content-length-range", size, size],
                {"Content-Type": content_type},
            ],
            ExpiresIn=expires_in,
        )
        return post["url"], {name: str(value) for name, value in post["fields"].items()}

    def download_url(self, key: str, *, content_type: str, disposition: str, expires_in: int) -> str:
        parameters = {"ResponseContentType": content_type, "ResponseContentDisposition": disposition}
        return str(self._storages[MAIL].url(key, parameters=parameters, expire=expires_in))
