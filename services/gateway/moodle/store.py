"""What the Moodle backend keeps per Moodle model, in S3 under the tenant.

Moodle names a model by two opaque strings sent with every request:
``uniqueid`` (a model version of one site) and ``dirhash`` (a directory of
that site). Everything the backend keeps lives under
``tenants/<tenant>/moodle/<uniqueid>/``, so ``/deletemodel`` (which sends
only ``uniqueid``) removes it with one listing:

- ``<dirhash>/model.json``: the ``MoodleModel`` record: the platform model
  it trains (``moodle-<uniqueid>-<dirhash>``, see ``model_name``), the
  dataset holding every sample received so far, the version Moodle's
  predictions come from;
- ``<dirhash>/runs/<runid>.json``: one evaluation's result and log, for
  ``/evaluationlog``.

A record is rewritten only if unchanged since it was read (its ETag), so two
trainings of one model at once cannot lose each other's samples silently.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from pydantic import BaseModel, Field

from shared import keys
from shared.errors import Conflict, InvalidInput, NotFound
from shared.jobs import now_iso
from shared.storage import Storage

MODEL_PREFIX = "moodle"
UNIQUEID_CHARS = 12
DIRHASH_CHARS = 8
RUNID_ATTEMPTS = 20
# What the reference backend keeps of an identifier: the rest is deleted.
_NOT_ID = re.compile(r"[^A-Za-z0-9_$-]")
_HEX = re.compile(r"[0-9a-f]+")
ID_MAX_CHARS = 200


class MoodleModel(BaseModel):
    """One (uniqueid, dirhash) model: its samples, its platform model and version."""

    uniqueid: str
    dirhash: str
    model: str
    target: str
    features: list[str]
    classes: list[int]
    dataset_id: str | None = None
    samples: int = 0
    batches: int = 0
    algorithm: str | None = None
    version: int | None = None
    job_id: str | None = None
    updated_at: str = Field(default_factory=now_iso)

    @property
    def trained(self) -> bool:
        return self.version is not None


def clean_id(value: str, field: str) -> str:
    """An identifier as the reference backend keeps it: [A-Za-z0-9_$-] only."""
    cleaned = _NOT_ID.sub("", value)
    if not cleaned:
        raise InvalidInput(
            f"{field} is empty once cleaned to letters, digits, _ $ -; "
            f"received {value[:80]!r}"
        )
    if len(cleaned) > ID_MAX_CHARS:
        raise InvalidInput(
            f"{field} has {len(cleaned)} characters; at most {ID_MAX_CHARS} are allowed"
        )
    return cleaned


def model_name(uniqueid: str, dirhash: str) -> str:
    """``moodle-<12 of uniqueid>-<8 of dirhash>``: the ids' own hexadecimal
    characters when they are hexadecimal (Moodle's SHA-1 and MD5), else those
    of their SHA-256."""
    uniqueid_part = _short(uniqueid, UNIQUEID_CHARS)
    return f"{MODEL_PREFIX}-{uniqueid_part}-{_short(dirhash, DIRHASH_CHARS)}"


def _short(value: str, chars: int) -> str:
    if len(value) >= chars and _HEX.fullmatch(value):
        return value[:chars]
    return hashlib.sha256(value.encode()).hexdigest()[:chars]


def _root(tenant: str, uniqueid: str) -> str:
    return f"{keys.tenant_root(tenant)}/moodle/{uniqueid}/"


def _record_key(tenant: str, uniqueid: str, dirhash: str) -> str:
    return f"{_root(tenant, uniqueid)}{dirhash}/model.json"


def _run_key(tenant: str, uniqueid: str, dirhash: str, runid: int) -> str:
    return f"{_root(tenant, uniqueid)}{dirhash}/runs/{runid}.json"


class MoodleStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def get(
        self, tenant: str, uniqueid: str, dirhash: str
    ) -> tuple[MoodleModel | None, str | None]:
        """The record and its ETag; (None, None) when Moodle never trained it."""
        try:
            value, etag = self.storage.get_json(_record_key(tenant, uniqueid, dirhash))
        except NotFound:
            return None, None
        return MoodleModel.model_validate(value), etag

    def put(self, tenant: str, record: MoodleModel, etag: str | None) -> None:
        """Write the record if nobody changed it since it was read (ETag ``etag``)."""
        record.updated_at = now_iso()
        key = _record_key(tenant, record.uniqueid, record.dirhash)
        value = record.model_dump(mode="json")
        try:
            if etag is None:
                self.storage.put_json(key, value, if_none_match=True)
            else:
                self.storage.put_json(key, value, if_match=etag)
        except Conflict as error:
            raise Conflict(
                f"Moodle model {record.model}: another request changed it meanwhile; "
                "send this request again"
            ) from error

    def forget(self, tenant: str, uniqueid: str, dirhash: str) -> None:
        self.storage.delete(_record_key(tenant, uniqueid, dirhash))

    def delete_all(self, tenant: str, uniqueid: str) -> int:
        """Remove everything kept under ``uniqueid``; the number of objects."""
        found = list(self.storage.list_keys(_root(tenant, uniqueid)))
        for key in found:
            self.storage.delete(key)
        return len(found)

    def new_run(self, tenant: str, uniqueid: str, dirhash: str) -> int:
        """A run id never given before for this model: a millisecond timestamp."""
        runid = int(time.time() * 1000)
        for _ in range(RUNID_ATTEMPTS):
            key = _run_key(tenant, uniqueid, dirhash, runid)
            try:
                self.storage.put_json(
                    key, {"runid": runid, "started_at": now_iso()}, if_none_match=True
                )
            except Conflict:
                runid += 1
                continue
            return runid
        raise Conflict(f"no free evaluation run id after {RUNID_ATTEMPTS} attempts")

    def save_run(
        self, tenant: str, uniqueid: str, dirhash: str, runid: int, run: dict[str, Any]
    ) -> None:
        self.storage.put_json(_run_key(tenant, uniqueid, dirhash, runid), run)

    def get_run(
        self, tenant: str, uniqueid: str, dirhash: str, runid: int
    ) -> dict[str, Any] | None:
        try:
            value, _ = self.storage.get_json(_run_key(tenant, uniqueid, dirhash, runid))
        except NotFound:
            return None
        return dict(value)
