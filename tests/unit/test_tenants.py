"""Tenants and API keys in a real S3 server (SeaweedFS)."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from shared import keys
from shared.errors import InvalidInput, NotFound, Unauthorized
from shared.settings import Settings
from shared.tenants import TenantStore


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_tenant_gets_a_key_that_authenticates_as_it(storage):
    store = TenantStore(storage)

    record, issued = store.create("  Moodle of Example School ")

    assert record.name == "Moodle of Example School"
    assert issued.tenant == record.id
    assert issued.api_key.startswith("eduml_") and len(issued.api_key) > 40
    assert [key.key_id for key in record.keys] == [issued.key_id]
    assert store.authenticate(issued.api_key) == record.id
    assert issued.api_key not in repr(issued)


def test_only_the_hash_of_a_key_is_stored(storage):
    store = TenantStore(storage)

    record, issued = store.create("school")
    second = store.issue_key(record.id)

    stored = [storage.get_bytes(key) for key in storage.list_keys("")]
    for raw in (issued.api_key, second.api_key):
        assert not any(raw.encode() in data for data in stored)
    digest = hashlib.sha256(issued.api_key.encode()).hexdigest()
    index, _ = storage.get_json(keys.api_key_index(digest))
    assert index == {"tenant": record.id, "key_id": issued.key_id}
    assert store.get(record.id).key(issued.key_id).sha256 == digest


def test_two_tenants_keys_authenticate_as_their_own_tenant(storage):
    store = TenantStore(storage)

    first, first_key = store.create("first")
    second, second_key = store.create("second")

    assert first.id != second.id
    assert store.authenticate(first_key.api_key) == first.id
    assert store.authenticate(second_key.api_key) == second.id


@pytest.mark.parametrize("api_key", ["", None])
def test_a_missing_key_is_refused(storage, api_key):
    with pytest.raises(Unauthorized, match="missing bearer token"):
        TenantStore(storage).authenticate(api_key)


@pytest.mark.parametrize(
    "api_key", ["eduml_unknown", "no-prefix", "eduml_" + "x" * 300]
)
def test_an_unknown_key_is_refused(storage, api_key):
    TenantStore(storage).create("school")

    with pytest.raises(Unauthorized, match="API key not recognised or revoked"):
        TenantStore(storage).authenticate(api_key)


def test_a_revoked_key_is_refused_and_revoking_again_changes_nothing(storage):
    store = TenantStore(storage)
    record, issued = store.create("school")
    kept = store.issue_key(record.id)

    store.revoke_key(record.id, issued.key_id)
    revoked_at = store.get(record.id).key(issued.key_id).revoked_at
    store.revoke_key(record.id, issued.key_id)

    with pytest.raises(Unauthorized, match="revoked"):
        store.authenticate(issued.api_key)
    assert store.authenticate(kept.api_key) == record.id
    assert revoked_at is not None
    assert store.get(record.id).key(issued.key_id).revoked_at == revoked_at


def test_a_key_is_refused_when_its_record_does_not_list_it(storage):
    store = TenantStore(storage)
    record, issued = store.create("school")
    digest = hashlib.sha256(issued.api_key.encode()).hexdigest()
    storage.put_json(
        keys.api_key_index(digest), {"tenant": record.id, "key_id": "k00000000"}
    )

    with pytest.raises(Unauthorized, match="not recognised"):
        store.authenticate(issued.api_key)


def test_an_accepted_key_is_remembered_until_the_cache_time_runs_out(storage):
    clock = Clock()
    gateway = TenantStore(storage, cache_ttl_s=30, clock=clock)
    elsewhere = TenantStore(storage)
    record, issued = elsewhere.create("school")
    gateway.authenticate(issued.api_key)

    elsewhere.revoke_key(record.id, issued.key_id)

    clock.now += 29
    assert gateway.authenticate(issued.api_key) == record.id
    clock.now += 1
    with pytest.raises(Unauthorized, match="revoked"):
        gateway.authenticate(issued.api_key)


def test_the_store_that_revokes_a_key_forgets_it_at_once(storage):
    gateway = TenantStore(storage, cache_ttl_s=30, clock=Clock())
    record, issued = gateway.create("school")
    gateway.authenticate(issued.api_key)

    gateway.revoke_key(record.id, issued.key_id)

    with pytest.raises(Unauthorized, match="revoked"):
        gateway.authenticate(issued.api_key)


def test_unknown_tenants_and_key_ids_are_not_found(storage):
    store = TenantStore(storage)
    record, issued = store.create("school")

    with pytest.raises(NotFound, match="tenant 't000000000000' not found"):
        store.issue_key("t000000000000")
    with pytest.raises(NotFound, match="tenant 't000000000000' not found"):
        store.revoke_key("t000000000000", issued.key_id)
    with pytest.raises(
        NotFound, match=f"tenant {record.id!r} has no API key 'k00000000'"
    ):
        store.revoke_key(record.id, "k00000000")
    for odd in ("default", "../x", ""):
        with pytest.raises(NotFound, match="not found"):
            store.get(odd)


def test_tenants_lists_those_with_a_record_only(storage):
    store = TenantStore(storage)
    first, _ = store.create("first")
    second, _ = store.create("second")
    storage.put_json(keys.job_record("default", "j1"), {})

    listed = store.tenants()

    assert sorted(record.id for record in listed) == sorted([first.id, second.id])
    assert {record.name for record in listed} == {"first", "second"}


def test_a_blank_tenant_name_is_refused(storage):
    with pytest.raises(InvalidInput, match="tenant name must have 1 to 200 characters"):
        TenantStore(storage).create("   ")


def test_the_admin_key_has_no_default_and_must_not_be_short(monkeypatch):
    monkeypatch.delenv("ADMIN_API_KEY", raising=False)

    assert Settings().admin_api_key is None

    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(admin_api_key="short")
