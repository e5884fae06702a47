"""`spyglass report`, `spyglass audit ...` and `spyglass policy replay` from the command line."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.audit import synthetic_events
from guards.audit_sqlite import SQLiteSink
from servers.cli import main
from tests.conftest import Harness
from tests.utilization.helpers import ev


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPYGLASS_AUDIT_URL", raising=False)
    monkeypatch.setenv("SPYGLASS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two hours of synthetic traffic ending a minute ago."""
    path = tmp_path / "audit.db"
    start = datetime.now(UTC) - timedelta(hours=2, minutes=1)
    sink = SQLiteSink(path)
    for e in synthetic_events(2000, start, span=timedelta(hours=2)):
        sink.emit(e)
    sink.close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_terminal_report_names_the_classes_causes_and_next_steps(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "report", "--audit", str(db), "--since", "3h")
    assert code == 0
    assert "Spyglass utilization" in out and "calls 2000" in out
    assert "why agents could not act" in out and "human gate" in out
    assert re.search(r"\d+ calls to \w+ failed with 403", out)
    assert "upstream rate-limit headroom" in out and "datadog" in out


def test_the_json_report_groups_by_what_was_asked(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "report", "--audit", str(db), "--since", "3h", "--by", "principal,client", "--json")
    data = json.loads(out)
    assert code == 0 and data["totals"]["calls"] == 2000
    assert set(data["groups"][0]["key"]) == {"principal", "client"}
    assert sum(g["calls"] for g in data["groups"]) == 2000


def test_the_html_report_is_one_self_contained_page(db: Path, tmp_path: Path, capsys) -> None:
    page = tmp_path / "report.html"
    code, _, err = run(capsys, "report", "--audit", str(db), "--since", "3h", "--html", str(page))
    html = page.read_text()
    assert code == 0 and "wrote" in err
    for chart in ("chart-timeline", "chart-idle", "chart-tools", "chart-rules", "chart-headroom"):
        assert f'id="{chart}"' in html
    assert html.count('class="mark"') > 50
    assert not re.search(r"""(src|href)\s*=|url\(|@import|<link""", html, re.I)  # nothing fetched
    embedded = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert embedded and json.loads(embedded.group(1))["totals"]["calls"] == 2000


def test_report_problems_are_told_plainly(tmp_path: Path, db: Path, capsys) -> None:
    code, _, err = run(capsys, "report", "--audit", str(tmp_path / "nope.db"))
    assert code == 2 and "no audit log at" in err and "SPYGLASS_AUDIT_URL" in err
    code, _, err = run(capsys, "report", "--audit", str(db), "--by", "team")
    assert code == 2 and "cannot group by 'team'" in err
    code, _, err = run(capsys, "report", "--audit", str(db), "--since", "last tuesday-ish")
    assert code == 2 and "--since" in err


def test_tail_prints_the_newest_events_one_per_line(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "audit", "tail", "--audit", str(db), "-n", "3")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and all(re.match(r"\d{4}-\d\d-\d\dT", line) for line in lines)
    code, out, _ = run(capsys, "audit", "tail", "--audit", str(db), "-n", "2", "--json")
    assert [set(json.loads(x)) >= {"id", "tool", "outcome", "hash"} for x in out.splitlines()] == [True, True]


def test_tail_follow_prints_events_written_after_it_started(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.db"
    sink = SQLiteSink(path)
    sink.emit(ev(0))
    sink.close()
    import threading

    def later() -> None:
        s = SQLiteSink(path)
        s.emit(ev(5, tool="slack_search_messages"))
        s.close()

    timer = threading.Timer(0.3, later)
    timer.start()
    code, out, _ = run(capsys, "audit", "tail", "--audit", str(path), "-f", "--interval", "0.05",
                       "--max-seconds", "2")
    timer.join()
    assert code == 0 and [line.split()[3] for line in out.splitlines()] == ["datadog_search_logs",
                                                                             "slack_search_messages"]


def test_show_prints_one_event_in_full_by_id_prefix(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.db"
    sink = SQLiteSink(path)
    sink.emit(ev(0, id="abcdef123456", args='{"query":"service:checkout"}'))
    sink.close()
    code, out, _ = run(capsys, "audit", "show", "--audit", str(path), "abcdef")
    assert code == 0 and "abcdef123456" in out and '"query": "service:checkout"' in out and "hash" in out
    code, _, err = run(capsys, "audit", "show", "--audit", str(path), "zzzzzz")
    assert code == 2 and "no event 'zzzzzz'" in err


def test_query_filters_combine(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "audit", "query", "--audit", str(db), "--tool", "datadog_*", "--outcome", "denied",
                         "--principal", "alice", "--since", "3h", "--limit", "0", "--json")
    rows = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and rows
    assert all(r["tool"].startswith("datadog_") and r["outcome"] == "denied" and r["principal"] == "alice"
               for r in rows)


def test_verify_passes_on_an_intact_log_and_fails_on_a_tampered_one(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "audit", "verify", "--audit", str(db))
    assert code == 0 and "the chain is intact" in out
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_events WHERE rowid = 100")
    code, out, _ = run(capsys, "audit", "verify", "--audit", str(db))
    assert code == 1 and "✗ stream" in out and "does not follow" in out


def test_rollup_and_stats_report_what_they_did(db: Path, capsys) -> None:
    code, out, _ = run(capsys, "audit", "stats", "--audit", str(db), "--json")
    stats = json.loads(out)
    assert code == 0 and stats["events"] == 2000 and 100 < stats["bytes_per_event"] < 2000
    # 0.03 days is ~43 min: floored to the hour, the cutoff falls inside the 2 h of data whatever the clock says
    code, out, _ = run(capsys, "audit", "rollup", "--audit", str(db), "--raw-days", "0.03")
    assert code == 0 and re.search(r"rolled up \d+ events", out)
    code, out, _ = run(capsys, "report", "--audit", str(db), "--since", "3h", "--json")
    data = json.loads(out)
    assert data["totals"]["calls"] == 2000 and data["source"]["rolled_up_calls"] > 0


def test_policy_replay_lists_the_calls_a_new_policy_would_decide_differently(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.db"
    sink = SQLiteSink(path)
    sink.emit(ev(0, tool="deploy_apply", toolset="deploy_write", rule_id="prod",
                 args='{"env":"prod","action":"deploy"}'))
    sink.emit(ev(1))
    sink.close()
    policy = tmp_path / "new.toml"
    policy.write_text('[toolsets]\nenabled = ["datadog"]\n')
    code, out, _ = run(capsys, "policy", "replay", "--audit", str(path), "--policy", str(policy), "--old-policy", "log")
    assert code == 0 and "compared with: the decisions in the log" in out
    assert "replayed 2 calls" in out and "1 would change" in out
    assert "deploy_apply" in out and "toolsets.enabled" in out
    old = tmp_path / "old.toml"
    old.write_text('[toolsets]\nenabled = ["datadog", "deploy_write"]\n[[rules]]\nid = "prod"\neffect = "allow"\n'
                   'tools = ["deploy_*"]\n')
    code, out, _ = run(capsys, "policy", "replay", "--audit", str(path), "--policy", str(policy), "--json",
                       "--old-policy", str(old), "--fail-on-change")
    data = json.loads(out)
    assert code == 1 and data["by_direction"] == {"allow -> deny": 1} and data["baseline"] == str(old)


@pytest.mark.anyio
async def test_the_report_reads_what_the_guarded_server_wrote(harness: Harness, tmp_path: Path, capsys) -> None:
    path = tmp_path / "served.db"
    harness.sink = SQLiteSink(path)  # type: ignore[assignment]
    async with harness.client(harness.server(toolsets=["datadog"])) as c:
        await c.call_tool("datadog_search_logs", {"query": "service:checkout", "limit": 5})
        await c.call_tool("datadog_search_logs", {"query": "service:checkout", "limit": 100000})
        await c.call_tool("grafana_query_loki", {"query": "{app=\"x\"}"})
    harness.sink.close()
    code, out, _ = run(capsys, "report", "--audit", str(path), "--since", "1h", "--json")
    data = json.loads(out)
    assert code == 0 and data["totals"]["calls"] == 3
    assert {c["class"] for c in data["classes"]} == {"invalid_call"}
    assert {c["cause"] for c in data["classes"][0]["causes"]} == {"invalid arguments", "unknown tool"}
    code, out, _ = run(capsys, "audit", "verify", "--audit", str(path))
    assert code == 0
