"""Reply delivery, buffered counts and the gateway's champion memory, on a real Redis."""

from __future__ import annotations

import asyncio
import time

import redis

from services.gateway.champions import LocalChampions
from shared import keys, replies
from shared.registry import announce_champion
from shared.tally import Tally
from tests.unit.test_artifacts_and_serving import fitted, record_for


def test_a_pushed_answer_wakes_the_waiting_caller(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    address = replies.new_address()

    replies.push(connection, address, "c1", {"predictions": [1]})
    answer = replies.wait(redis_url, address, timeout_s=2.0)

    assert answer == {"predictions": [1]}
    assert connection.exists(keys.reply(address)) == 0  # taken, nothing left


def test_waiting_for_an_answer_that_never_comes_ends_at_the_timeout(
    redis_url: str,
) -> None:
    started = time.monotonic()

    answer = replies.wait(redis_url, replies.new_address(), timeout_s=0.3)

    assert answer is None
    assert 0.25 <= time.monotonic() - started < 2.0


def test_the_inbox_hands_each_answer_to_its_own_future(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)

    async def scenario() -> list[dict]:
        inbox = replies.Inbox(redis_url)
        first, second = inbox.expect("a"), inbox.expect("b")
        await asyncio.sleep(0.05)  # the listener is blocked on its list
        replies.push(connection, inbox.address, "b", {"n": 2})
        replies.push(connection, inbox.address, "a", {"n": 1})
        replies.push(connection, inbox.address, "gone", {"n": 3})  # nobody waits
        answers = list(await asyncio.wait_for(asyncio.gather(first, second), 5))
        await asyncio.wait_for(inbox.close(), 5)
        return answers

    assert asyncio.run(scenario()) == [{"n": 1}, {"n": 2}]


def test_counts_are_summed_and_written_in_one_flush(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    counter, histogram = "test:tally:counter", "test:tally:hash"
    connection.delete(counter, histogram)
    tally = Tally(interval_s=3600)  # flushed by hand below

    for _ in range(5):
        tally.add(connection, counter, 1, ttl_s=60)
        tally.add(connection, histogram, 0.5, ttl_s=60, field="sum")
    assert connection.get(counter) is None  # nothing written yet
    tally.flush()

    assert int(connection.get(counter)) == 5
    assert float(connection.hget(histogram, "sum")) == 2.5
    assert 0 < connection.ttl(counter) <= 60


def test_a_champion_change_drops_the_gateways_copy_at_once(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    record = record_for(fitted())

    async def scenario() -> tuple[bool, bool, bool]:
        champions = LocalChampions(redis_url, ttl_s=3600)
        champions.get("t", "m")  # starts following the announcements
        champions.put("t", "m", record)
        champions.put("t", "other", record)
        await asyncio.sleep(0.2)  # subscribed
        announce_champion(connection, "t", "m", 8)
        deadline = time.monotonic() + 5
        while champions.get("t", "m") is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return (
            champions.get("t", "m") is None,
            champions.get("t", "other") is not None,
            time.monotonic() < deadline,
        )

    dropped, other_kept, in_time = asyncio.run(scenario())

    assert dropped and other_kept and in_time


def test_a_champion_record_expires_after_its_time(redis_url: str) -> None:
    champions = LocalChampions(redis_url, ttl_s=0.05)
    champions.put("t", "m", record_for(fitted()))

    time.sleep(0.1)

    assert champions.get("t", "m") is None
