"""What the platform leaves behind: no raw student id anywhere, no key that never expires."""

from __future__ import annotations

import uuid

import pytest

from shared.storage import Storage
from tests.conftest import ARTIFACTS
from tests.integration.flow import train, upload_ok

pytestmark = pytest.mark.integration

# kombu's bindings and the queues themselves are the only keys meant to stay.
PERMANENT_PREFIXES = (b"_kombu.", b"unacked")
QUEUE_NAMES = (b"training", b"evaluation", b"serving")


def test_raw_student_ids_reach_no_object_key_or_log(
    api, settings, connection, model_name
):
    marker = f"RAWID{uuid.uuid4().hex[:10]}"
    rows = [f"{marker}-{i:03d},{i % 7},{i % 5},{int(i % 7 > 2)}" for i in range(60)]
    csv = "student_id,hours,absences,passed\n" + "\n".join(rows)
    dataset = upload_ok(api, csv.encode(), id_column="student_id")
    job = train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="passed",
        algorithm="linear",
    )
    answer = api.post(
        f"/v1/models/{model_name}/predict",
        json={
            "instances": [
                {"student_id": f"{marker}-001", "hours": 3, "absences": 1},
            ]
        },
    ).json()

    assert job["status"] == "deployed", job
    assert answer["ids"] == [f"{marker}-001"]
    assert marker not in _everything_in_s3(settings)
    assert marker not in _everything_in_redis(connection)
    for log in (ARTIFACTS / "logs").glob("*.log"):
        assert marker not in log.read_text(errors="replace"), log.name


def test_c05_every_redis_key_of_ours_expires(api, connection, model_name):
    csv = "hours,passed\n" + "\n".join(f"{i % 7},{int(i % 7 > 2)}" for i in range(40))
    dataset = upload_ok(api, csv.encode())
    train(
        api,
        model=model_name,
        dataset_id=dataset["id"],
        target="passed",
        algorithm="linear",
    )
    for _ in range(20):
        api.post(f"/v1/models/{model_name}/predict", json={"instances": [{"hours": 2}]})

    lasting = [
        key
        for key in connection.scan_iter()
        if connection.ttl(key) == -1 and not _permanent(key)
    ]

    assert lasting == []


def _permanent(key: bytes) -> bool:
    return (
        key.startswith(PERMANENT_PREFIXES) or key.split(b"\x06\x16")[0] in QUEUE_NAMES
    )


def _everything_in_s3(settings) -> str:
    storage = Storage.from_settings(settings.model_copy(update={"s3_prefix": ""}))
    texts = []
    for key in storage.list_keys(settings.s3_prefix + "/"):
        texts.append(key)
        texts.append(storage.get_bytes(key).decode("utf-8", errors="replace"))
    return "\n".join(texts)


def _everything_in_redis(connection) -> str:
    texts = []
    for key in connection.scan_iter():
        texts.append(key.decode(errors="replace"))
        kind = connection.type(key)
        if kind == b"string":
            texts.append(str(connection.get(key)))
        elif kind == b"hash":
            texts.append(str(connection.hgetall(key)))
        elif kind == b"list":
            texts.append(str(connection.lrange(key, 0, -1)))
        elif kind in (b"set", b"zset"):
            texts.append(
                str(
                    connection.zrange(key, 0, -1)
                    if kind == b"zset"
                    else connection.smembers(key)
                )
            )
    return "\n".join(texts)
