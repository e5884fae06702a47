"""grafana_query_prometheus against a real PromQL engine: Debian's Prometheus, backfilled from the World
with promtool, behind the fake Grafana's datasource-proxy route. The same tool calls against the fake's
own PromQL subset must give the same answers, so the fake cannot drift from Prometheus unnoticed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from servers._core.fakekit import Faults
from servers._core.timeparse import iso
from servers._core.world import World
from servers.grafana import fake
from servers.sandbox import Sandbox
from tests.conftest import Harness, text_of

PROMETHEUS, PROMTOOL = Path("/usr/bin/prometheus"), Path("/usr/bin/promtool")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.anyio,
    pytest.mark.skipif(not (PROMETHEUS.exists() and PROMTOOL.exists()),
                       reason="Debian's prometheus package is not installed (apt-get install prometheus; "
                       "it is listed in scripts/system-packages.txt)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def prometheus_url(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("prometheus")
    now = world.now().timestamp()
    (root / "world.om").write_text(fake.WorldMetrics(world).openmetrics(now - 4 * 3600, now))
    subprocess.run([str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(root / "world.om"),
                    str(root / "tsdb")], check=True, capture_output=True, timeout=120)
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
    port = _free_port()
    log = (root / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start: {(root / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def harness_for(world: World, prometheus_url: str | None) -> Harness:
    faults = Faults()
    app = Starlette(routes=[Mount("/grafana", app=fake.build_app(world, faults, prometheus_url=prometheus_url))])
    return Harness(Sandbox(world, app, {"grafana": faults}, {"grafana": fake}))


# Windows (minutes before the World's anchor) end before the backfill did, so both engines see the same samples.
CASES: list[tuple[dict[str, Any], int]] = [
    ({"query": 'sum(rate(http_request_errors_total{service="checkout"}[5m])) / '
               'sum(rate(http_requests_total{service="checkout"}[5m]))', "points": 6}, 40),
    ({"query": 'sum by (version) (rate(http_requests_total{service="checkout"}[5m]))', "points": 0}, 90),
    ({"query": 'sum by (service) (increase(http_request_errors_total[10m]))', "points": 4}, 60),
    ({"query": 'max by (version) (service:http_request_duration_seconds:p95{service="checkout"})'}, 60),
    ({"query": "sum by (service) (rate(http_requests_total[5m]))", "instant": True}, 60),
]


def table(text: str) -> list[list[str]]:
    """The series rows (names and numbers), without the header line that names the step and times."""
    return [[c.strip() for c in ln.split("|")] for ln in text.splitlines()[1:]
            if " | " in ln and not ln.startswith("series |")]


@pytest.mark.parametrize(("args", "minutes"), CASES, ids=[c[0]["query"][:40] for c in CASES])
async def test_real_prometheus_and_the_fake_give_the_same_answer(world: World, prometheus_url: str,
                                                                  args: dict[str, Any], minutes: int) -> None:
    end = world.anchor - timedelta(seconds=30)
    args = {**args, "from": iso(end - timedelta(minutes=minutes)), "to": iso(end)}
    texts = []
    for url in (prometheus_url, None):
        h = harness_for(world, url)
        async with h.client(h.server(toolsets=["grafana"])) as c:
            r = await c.call_tool("grafana_query_prometheus", args)
        assert not r.is_error, text_of(r)
        texts.append(text_of(r))
    real, ours = (table(t) for t in texts)
    # Rendered to 3 significant digits, the two engines agree exactly: same series, same numbers.
    assert real and real == ours


async def test_the_real_engine_shows_the_checkout_regression_by_version(world: World, prometheus_url: str) -> None:
    h = harness_for(world, prometheus_url)
    async with h.client(h.server(toolsets=["grafana"])) as c:
        r = await c.call_tool("grafana_query_prometheus", {
            "query": 'sum by (version) (rate(http_request_errors_total{service="checkout"}[5m])) / '
                     'sum by (version) (rate(http_requests_total{service="checkout"}[5m]))',
            "from": "now-30m", "points": 0})
        labels = await c.call_tool("grafana_prometheus_metadata", {"kind": "label_values", "label": "version",
                                                                   "match": '{service="checkout"}'})
    text = text_of(r)
    row = next(ln for ln in text.splitlines() if ln.startswith("s1 "))
    assert "version=2.14.0" in row and float(row.split("|")[3]) > 0.08
    assert text_of(labels).splitlines()[1] == "2.13.4, 2.14.0"
    assert any(":" in rec.url and "/api/v1/query_range" in rec.url for rec in h.transport.requests)
