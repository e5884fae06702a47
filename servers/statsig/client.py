"""The only Statsig module that talks HTTP (Console API). Every route it may call is listed in ROUTES."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from servers._core.egress import EgressClient, Route
from servers._core.spec import ClientEnv
from servers._core.timeparse import iso
from servers.statsig.models import (
    COLLECTION,
    Change,
    Entity,
    MetricResult,
    Page,
    parse_audit_entry,
    parse_entity,
    parse_page,
    parse_pulse,
)
from servers.statsig.settings import StatsigSettings

LIST_ROUTES = {kind: Route("GET", f"/console/v1/{c}") for kind, c in COLLECTION.items()}
GET_ROUTES = {kind: Route("GET", f"/console/v1/{c}/{{id}}") for kind, c in COLLECTION.items()}
PULSE = Route("GET", "/console/v1/experiments/{id}/pulse_results")
AUDIT_LOGS = Route("GET", "/console/v1/audit_logs")

ROUTES: tuple[Route, ...] = (*LIST_ROUTES.values(), *GET_ROUTES.values(), PULSE, AUDIT_LOGS)

PAGE_SIZE = 100
AUDIT_MAX_PAGES = 10  # 1000 audit entries per question; more is reported as truncated


def tags_in_scope(tags: Sequence[str], scope_tags: Sequence[str] | None) -> bool:
    """No tag scope: everything. A tag scope: items carrying at least one listed tag (globs allowed)."""
    if scope_tags is None:
        return True
    return any(fnmatchcase(t, pat) for t in tags for pat in scope_tags)


class StatsigClient:
    def __init__(self, settings: StatsigSettings, env: ClientEnv) -> None:
        env.register_secret(settings.api_key.get_secret_value())
        self.http = EgressClient(
            upstream="statsig",
            base_url=settings.base_url,
            routes=ROUTES,
            headers={"STATSIG-API-KEY": settings.api_key.get_secret_value(), "Accept": "application/json"},
            transport=env.transport,
            access_hint="check STATSIG_CONSOLE_API_KEY: it must be an active Console API key (not a server or "
            "client SDK key) of the right project",
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def list_page(self, kind: str, *, page: int, limit: int = PAGE_SIZE,
                        tags: Sequence[str] = ()) -> Page:
        params: list[tuple[str, Any]] = [("limit", limit), ("page", page)]
        if tags and kind != "segment":  # the segments list takes no tag filter; callers filter after
            params += [("tags", t) for t in tags]
        resp = await self.http.request("GET", LIST_ROUTES[kind].template, params=params)
        return parse_page(kind, resp.json())

    async def get(self, kind: str, entity_id: str) -> Entity:
        resp = await self.http.request("GET", GET_ROUTES[kind].template, path_params={"id": entity_id})
        data = resp.json().get("data")
        return parse_entity(kind, data if isinstance(data, dict) else {})

    async def pulse(self, experiment_id: str, control: str, test: str) -> list[MetricResult]:
        resp = await self.http.request("GET", PULSE.template, path_params={"id": experiment_id},
                                       params={"control": control, "test": test})
        return parse_pulse(resp.json())

    async def audit_log(self, start: datetime, end: datetime) -> tuple[list[Change], bool]:
        """Changes with start <= at <= end, newest first, and whether the page cap cut the list."""
        params: dict[str, Any] = {
            "startDate": start.strftime("%Y-%m-%d"),
            # endDate is a whole day; one more day covers an end near midnight in any zone the API uses.
            "endDate": (end + timedelta(days=1)).strftime("%Y-%m-%d"),
            "limit": PAGE_SIZE,
        }
        out: list[Change] = []
        capped = True
        for page in range(1, AUDIT_MAX_PAGES + 1):
            body = (await self.http.request("GET", AUDIT_LOGS.template, params={**params, "page": page})).json()
            for d in body.get("data") or []:
                change = parse_audit_entry(d) if isinstance(d, dict) else None
                if change is not None and start <= change.at <= end:
                    out.append(change)
            if not (body.get("pagination") or {}).get("nextPage"):
                capped = False
                break
        out.sort(key=lambda c: c.at, reverse=True)
        return out, capped

    async def changes_between(self, start: datetime, end: datetime, *,
                              tags: Sequence[str] | None = None) -> list[dict[str, str]]:
        """Who changed what between ``start`` and ``end``, oldest first, for release diffs.

        Keys: at (ISO 8601 UTC), actor, entity ("gate:checkout_async_payments"), action, summary.
        ``tags``: the caller's Statsig tag scope (``policy.scope_for("statsig").tags``); None = unscoped.
        """
        changes, _cut = await self.audit_log(start, end)
        return [
            {"at": iso(c.at), "actor": c.actor, "entity": c.entity, "action": c.action, "summary": c.summary}
            for c in sorted(changes, key=lambda c: c.at)
            if tags_in_scope(c.tags, tags)
        ]


def make_client(env: ClientEnv) -> StatsigClient:
    return StatsigClient(StatsigSettings.from_env(env.env), env)
