"""The storage module against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import pytest

from shared.errors import Conflict, DependencyUnavailable, NotFound
from shared.storage import Storage


def test_objects_round_trip_with_their_checksum(storage):
    digest = storage.put_verified("a/b.bin", b"hello")

    assert storage.get_bytes("a/b.bin") == b"hello"
    assert storage.head("a/b.bin") == (5, digest)
    assert list(storage.list_keys("a/")) == ["a/b.bin"]


def test_write_if_new_refuses_an_existing_key(storage):
    storage.put_json("x.json", {"n": 1}, if_none_match=True)

    with pytest.raises(Conflict):
        storage.put_json("x.json", {"n": 2}, if_none_match=True)


def test_write_if_unchanged_refuses_a_stale_etag(storage):
    storage.put_json("x.json", {"n": 1})
    _, etag = storage.get_json("x.json")
    storage.put_json("x.json", {"n": 2}, if_match=etag)

    with pytest.raises(Conflict):
        storage.put_json("x.json", {"n": 3}, if_match=etag)


def test_missing_object_is_not_found(storage):
    with pytest.raises(NotFound, match="no object"):
        storage.get_bytes("missing")


def test_c24_wrong_secret_names_the_settings(settings):
    wrong = settings.model_copy(update={"s3_secret_access_key": "not-the-secret"})

    with pytest.raises(DependencyUnavailable, match="S3_SECRET_ACCESS_KEY"):
        Storage.from_settings(wrong).check()


def test_unreachable_endpoint_names_the_setting(settings):
    nowhere = settings.model_copy(
        update={"s3_endpoint_url": "http://127.0.0.1:9", "s3_max_attempts": 1}
    )

    with pytest.raises(DependencyUnavailable, match="S3_ENDPOINT_URL"):
        Storage.from_settings(nowhere).check()


def test_c25_missing_bucket_is_created_once(settings):
    fresh = settings.model_copy(update={"s3_bucket": "eduml-test-created"})
    store = Storage.from_settings(fresh)

    store.ensure_bucket()
    store.ensure_bucket()

    store.check()
