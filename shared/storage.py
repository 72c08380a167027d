"""Every S3 call of the platform.

``Storage`` wraps one boto3 client, one bucket and one key prefix. Objects
carry the SHA-256 of their bytes in their metadata, so a reader can check
that what it got is what was written. botocore's errors become ours here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import Conflict, DependencyUnavailable, NotFound, PlatformError
from shared.settings import Settings

log = logging.getLogger(__name__)

SHA256_METADATA = "sha256"
STREAM_CHUNK_BYTES = 1024 * 1024
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_AUTH_CODES = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "403",
}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for the configured endpoint, signature v4, path style."""
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": settings.s3_addressing_style},
        connect_timeout=settings.s3_connect_timeout_s,
        read_timeout=settings.s3_read_timeout_s,
        retries={"max_attempts": settings.s3_max_attempts, "mode": "standard"},
        max_pool_connections=32,
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        config=config,
    )


class Storage:
    """Objects of one bucket under one key prefix."""

    def __init__(
        self, s3: Any, bucket: str, prefix: str = "", endpoint: str = ""
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint = endpoint

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(
            make_s3_client(settings),
            settings.s3_bucket,
            settings.s3_prefix,
            settings.s3_endpoint_url,
        )

    # --- bucket -------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing; idempotent."""
        try:
            self.s3.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if _code(error) not in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                raise self._translate(error, "bucket") from error
        except BotoCoreError as error:
            raise self._translate(error, "bucket") from error
        try:
            self.s3.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise self._translate(error, "bucket") from error
        log.info("storage: created bucket %r at %s", self.bucket, self.endpoint)

    def check(self) -> None:
        """Raise DependencyUnavailable unless the bucket answers a HEAD."""
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, "bucket") from error

    # --- objects ------------------------------------------------------------

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write an object with its SHA-256 in metadata; returns its ETag.

        ``if_none_match`` writes only if the key is new, ``if_match`` only if
        the object still has that ETag; a lost race raises Conflict.
        """
        extra: dict[str, Any] = {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        try:
            answer = self.s3.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=data,
                ContentType=content_type,
                Metadata={SHA256_METADATA: sha256_hex(data)},
                **extra,
            )
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key) from error
        return str(answer["ETag"])

    def put_verified(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Write an object, then read back its size and checksum; returns SHA-256."""
        digest = sha256_hex(data)
        self.put_bytes(key, data, content_type=content_type)
        size, stored = self.head(key)
        if size != len(data) or stored != digest:
            raise DependencyUnavailable(
                f"upload of {key!r} did not verify: wrote {len(data)} bytes with "
                f"sha256 {digest[:12]}…, the store holds {size} bytes with "
                f"sha256 {str(stored)[:12]}…"
            )
        return digest

    def get_bytes(self, key: str) -> bytes:
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return bytes(answer["Body"].read())
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key) from error

    def stream(
        self, key: str, chunk_bytes: int = STREAM_CHUNK_BYTES
    ) -> tuple[int, Iterator[bytes]]:
        """An object's size and its bytes, read in chunks as they are consumed.

        A missing object raises here; a failure after the first chunk, from the
        iterator.
        """
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key) from error
        chunks = self._chunks(answer["Body"], key, chunk_bytes)
        return int(answer["ContentLength"]), chunks

    def _chunks(self, body: Any, key: str, chunk_bytes: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_bytes)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key) from error
        finally:
            body.close()

    def head(self, key: str) -> tuple[int, str | None]:
        """Size in bytes and the recorded SHA-256 of an object."""
        try:
            answer = self.s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key) from error
        metadata = {k.lower(): v for k, v in answer.get("Metadata", {}).items()}
        return int(answer["ContentLength"]), metadata.get(SHA256_METADATA)

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except NotFound:
            return False
        return True

    def put_json(
        self,
        key: str,
        value: Any,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        data = json.dumps(value, sort_keys=True, allow_nan=False).encode()
        return self.put_bytes(
            key,
            data,
            content_type="application/json",
            if_match=if_match,
            if_none_match=if_none_match,
        )

    def get_json(self, key: str) -> tuple[Any, str]:
        """The decoded object and its ETag, for a later conditional write."""
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
            body = answer["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key) from error
        return json.loads(body), str(answer["ETag"])

    def delete(self, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, key) from error

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under a prefix, in lexical order, without the storage prefix."""
        for page in self._pages(prefix, delimiter=None):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]

    def list_folders(self, prefix: str) -> list[str]:
        """The immediate 'sub-folders' of a prefix, each ending in '/'."""
        folders: list[str] = []
        for page in self._pages(prefix, delimiter="/"):
            for item in page.get("CommonPrefixes", []):
                folders.append(item["Prefix"][len(self.prefix) :])
        return folders

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix + prefix,
        }
        if delimiter:
            arguments["Delimiter"] = delimiter
        try:
            yield from self.s3.get_paginator("list_objects_v2").paginate(**arguments)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(error, prefix) from error

    # --- errors -------------------------------------------------------------

    def _translate(self, error: Exception, key: str) -> PlatformError:
        where = f"s3://{self.bucket}/{self.prefix}{key} at {self.endpoint}"
        if isinstance(error, ClientError):
            code = _code(error)
            if code == "NoSuchBucket":
                return DependencyUnavailable(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}; "
                    "create it or set S3_BUCKET"
                )
            if code in _NOT_FOUND_CODES:
                return NotFound(f"no object {where}")
            if code in _PRECONDITION_CODES:
                return Conflict(f"{where} changed while it was being written")
            if code in _AUTH_CODES:
                return DependencyUnavailable(
                    f"S3 authentication failed at {self.endpoint}: {code} — check "
                    "S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_REGION and the clock"
                )
            return DependencyUnavailable(f"S3 error {code} for {where}")
        return DependencyUnavailable(
            f"S3 is unreachable at {self.endpoint} (S3_ENDPOINT_URL): {error}"
        )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
