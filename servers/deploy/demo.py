"""The demo's last chapter: the agent acts. A forward deploy during the freeze is refused with the
rule named; a rollback is planned, applied, followed to the end, and the recovery verified in
Datadog. Runs under config/demo-policy.toml and config/sandbox.toml, through a real MCP client.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

Call = Callable[[str, dict[str, Any]], Awaitable[tuple[str, bool]]]
Say = Callable[[str], None]

_RULE = re.compile(r"\[([a-z0-9_.-]+)\] deploy_apply would be denied by")
_ROW = re.compile(r"^s1 \S+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", re.M)


def _field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f"{name}: "):
            return line.split(": ", 1)[1].strip()
    return None


async def run_deploy_story(call: Call, say: Say) -> None:
    say("The fix-forward idea: ship checkout 2.14.1 to prod as a canary. The agent asks for a plan first.")
    text, refused = await call("deploy_plan", {"service": "checkout", "env": "prod", "action": "deploy",
                                               "version": "2.14.1", "strategy": "canary",
                                               "reason": "raise the async payment pool size"})
    if refused:
        rule = _RULE.search(text)
        say(f"Refused{' by rule ' + rule.group(1) if rule else ''}: the plan lists every failing check "
            "(the change freeze, 2.14.1's failing CI, the open incident) and what would make it pass.")
    else:
        say("The plan was not refused: this policy has no active freeze for it. The agent does not apply it.")

    say("Rolling back is allowed during the freeze and the incident. Plan the rollback to the previous release.")
    text, failed = await call("deploy_plan", {"service": "checkout", "env": "prod", "action": "rollback",
                                              "reason": "errors and p95 climbed after 2.14.0 (INC-142)"})
    plan_id = _field(text, "plan_id")
    if failed or not plan_id:
        say("The rollback plan did not pass its checks; a human takes it from here.")
        return
    applied_at = datetime.now(UTC).replace(microsecond=0)
    say("Every check passed and the plan is signed, single use and bound to this agent. Apply it.")
    text, failed = await call("deploy_apply", {"plan_id": plan_id})
    op = _field(text, "operation")
    if failed or not op:
        say("The apply was refused or failed; the audit log has the reason.")
        return

    say("Follow the rollout until it is done (progress is reported while it waits).")
    text, failed = await call("deploy_get_status", {"operation": op, "wait_s": 60})
    if failed or " · Succeeded" not in text.splitlines()[0]:
        say("The rollback has not finished healthy; the agent reports that instead of claiming success.")
        return

    say("Verify the recovery where the incident showed up: checkout's errors per minute.")
    text, failed = await call("datadog_query_metrics", {
        "query": "sum:trace.http.request.errors{service:checkout}", "from": "now-15m", "points": 8})
    row = _ROW.search(text)
    if not failed and row:
        _min, peak, avg, last = (float(g) for g in row.groups())
        verdict = "back to normal" if last < avg / 5 else "not yet back to normal"
        say(f"Errors per minute: {last:g} now against {avg:g} on average over the last 15 minutes "
            f"(peak {peak:g}): {verdict}.")
    text, failed = await call("datadog_search_logs", {"query": "service:checkout status:error",
                                                      "from": applied_at.isoformat().replace("+00:00", "Z"),
                                                      "limit": 5})
    if not failed:
        quiet = "no log lines match" in text
        say("Checkout error logs since the rollback: " + ("none." if quiet else "a few, at the usual base rate."))
    say("The incident ends with a rollback an agent planned, applied and verified, inside the policy, "
        "with every step in the audit log.")
