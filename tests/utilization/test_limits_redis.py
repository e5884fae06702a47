"""Shared limits in Redis: one budget across replicas, single-use claims, fail closed for writes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from guards.audit import MemorySink
from guards.decide import Decision
from guards.enforce import Guard, ToolMeta, ToolOutput
from guards.errors import LimitsUnavailable
from guards.limits import MemoryLimitStore
from guards.limits_redis import RedisLimitStore, split_url
from guards.policy import parse_policy
from guards.principal import Principal
from guards.record import CallRecord
from guards.redact import Redactor
from guards.sinks import open_limits
from tests.conftest import env_url

pytestmark = pytest.mark.anyio
pytest.importorskip("redis", reason="redis is not installed (the redis extra)")

REDIS = env_url("SPYGLASS_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(REDIS is None, reason="SPYGLASS_TEST_REDIS_URL is not set "
                                                       "(CI sets redis://127.0.0.1:6379/0)")
UNREACHABLE = "redis://127.0.0.1:1/0"


def prefixed(url: str) -> str:
    return f"{url}?prefix=spyglass-test-{uuid.uuid4().hex[:10]}:"


def test_our_prefix_parameter_is_taken_out_of_the_url() -> None:
    assert split_url("redis://h:6379/0?prefix=a:b:&db=1") == ("redis://h:6379/0?db=1", "a:b:")
    assert split_url("redis://h:6379/0") == ("redis://h:6379/0", "spyglass:")


async def test_without_a_url_limits_stay_in_the_process() -> None:
    assert isinstance(open_limits(None, env={}), MemoryLimitStore)


@needs_redis
async def test_two_replicas_share_one_budget_under_concurrent_takes() -> None:
    assert REDIS is not None
    url = prefixed(REDIS)
    a, b = RedisLimitStore(url), RedisLimitStore(url)
    granted: list[bool] = []

    async def take(store: RedisLimitStore) -> None:
        granted.append(await store.take("deploys|env=prod", 10, 60) is None)

    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(take, a if i % 2 else b)
    assert granted.count(True) == 10
    wait = await a.take("deploys|env=prod", 10, 60)
    assert wait is not None and 0 < wait <= 60
    await a.aclose()
    await b.aclose()


@needs_redis
async def test_a_plan_can_be_claimed_once_across_replicas() -> None:
    assert REDIS is not None
    url = prefixed(REDIS)
    a, b = RedisLimitStore(url), RedisLimitStore(url)
    results = [await a.claim_once("plan-1", 60), await b.claim_once("plan-1", 60), await b.claim_once("plan-2", 60)]
    assert results == [True, False, True]
    assert await a.healthy()
    await a.aclose()
    await b.aclose()


@needs_redis
async def test_a_lease_has_one_holder_across_replicas_and_only_its_token_releases_it() -> None:
    assert REDIS is not None
    url = prefixed(REDIS)
    a, b = RedisLimitStore(url), RedisLimitStore(url)
    token = await a.lease("deploy.apply", 30)
    assert token is not None and await b.lease("deploy.apply", 30) is None
    await b.release("deploy.apply", "another-token")
    assert await b.lease("deploy.apply", 30) is None
    await a.release("deploy.apply", token)
    assert await b.lease("deploy.apply", 0.2) is not None
    await anyio.sleep(0.3)  # expired: free again
    assert await a.lease("deploy.apply", 30) is not None
    await a.aclose()
    await b.aclose()


async def test_a_lease_fails_closed_when_redis_is_unreachable() -> None:
    store = RedisLimitStore(UNREACHABLE, timeout_s=0.2)
    with pytest.raises(LimitsUnavailable, match="cannot be held"):
        await store.lease("deploy.apply", 30)
    await store.aclose()


async def test_unreachable_redis_falls_back_to_local_limits_for_reads_and_says_so_once() -> None:
    sink = MemorySink()
    store = RedisLimitStore(UNREACHABLE, sink=sink, timeout_s=0.2)
    assert [await store.take("b", 2, 60) for _ in range(3)][:2] == [None, None]
    assert await store.take("b", 2, 60) is not None  # the local window still enforces
    assert not await store.healthy()
    with pytest.raises(LimitsUnavailable, match="cannot be claimed"):
        await store.claim_once("plan-1", 60)
    (notice,) = sink.events
    assert (notice.principal_kind, notice.tool, notice.outcome) == ("system", "limits.redis", "error")
    assert "write calls are refused" in notice.message
    await store.aclose()


READ = ToolMeta("t_read", "datadog", "read", "datadog")
WRITE = ToolMeta("t_write", "deploy_write", "write", "deploy")
POLICY = parse_policy({"toolsets": {"enabled": ["datadog", "deploy_write"]},
                       "rules": [{"id": "allow-writes", "effect": "allow", "tools": ["t_write"]}]})


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    return dict(raw)


async def execute(args: dict[str, Any], d: Decision, r: CallRecord) -> ToolOutput:
    return ToolOutput("done")


async def test_the_guard_refuses_writes_but_serves_reads_while_shared_limits_are_down() -> None:
    sink = MemorySink()
    limits = RedisLimitStore(UNREACHABLE, sink=sink, timeout_s=0.2)
    g = Guard(POLICY, sink, limits, Redactor())
    who = Principal("alice", "token", "claude-code", "2.1", "run-1")
    read = await g.run(READ, {}, who, validate, execute)
    write = await g.run(WRITE, {}, who, validate, execute)
    assert not read.is_error and read.text == "done"
    assert write.is_error and "shared limits store is unreachable" in write.text
    calls = [e for e in sink.events if e.principal_kind != "system"]
    assert [(e.tool, e.outcome) for e in calls] == [("t_read", "ok"), ("t_write", "error")]
    await limits.aclose()


@needs_redis
async def test_the_guard_allows_writes_when_shared_limits_are_healthy() -> None:
    assert REDIS is not None
    limits = RedisLimitStore(prefixed(REDIS))
    g = Guard(POLICY, MemorySink(), limits, Redactor())
    result = await g.run(WRITE, {}, Principal("alice", "token"), validate, execute)
    assert not result.is_error
    await limits.aclose()
