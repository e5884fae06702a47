"""The only Linear modules' HTTP: ``POST /graphql`` with fixed documents (servers.linear.documents).

Two clients, two route lists: :class:`LinearClient` (read toolset) may send only the read queries,
:class:`LinearWriteClient` (``linear_write``) only the write-side documents. GraphQL puts queries and
mutations on one URL, so besides the egress route allowlist each client refuses any document that is
not one of its own constants, before a socket opens.
"""

from __future__ import annotations

from typing import Any

import httpx2

from servers._core.egress import EgressClient, Route, epoch_ms_reset_seconds
from servers._core.errors import EgressDenied, MissingAccess, NotFound, RateLimited, UpstreamError
from servers._core.spec import ClientEnv
from servers.linear import documents as docs
from servers.linear.models import Connection, IssueDetail, parse_connection, parse_issue_detail
from servers.linear.settings import LinearSettings

GRAPHQL = "/graphql"
READ_ROUTES: tuple[Route, ...] = (Route("POST", GRAPHQL, retry=True),)  # read-only queries (fixed documents)
WRITE_ROUTES: tuple[Route, ...] = (Route("POST", GRAPHQL, retry=False),)  # a mutation is never retried

ACCESS_HINT = ("check LINEAR_API_KEY: a personal API key (lin_api_...) sent without 'Bearer', whose user can "
               "see the team")


class _LinearGraphQL:
    documents: tuple[str, ...] = ()

    def __init__(self, settings: LinearSettings, env: ClientEnv, routes: tuple[Route, ...]) -> None:
        env.register_secret(settings.api_key.get_secret_value())
        self.http = EgressClient(
            upstream="linear",
            base_url=settings.base_url,
            routes=routes,
            # Personal API keys go bare in Authorization; "Bearer" is for OAuth tokens only.
            headers={"Authorization": settings.api_key.get_secret_value(), "Accept": "application/json"},
            transport=env.transport,
            access_hint=ACCESS_HINT,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def run(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        if document not in self.documents:
            raise EgressDenied(
                f"linear: {type(self).__name__} may not send this GraphQL document",
                hint="this is a Spyglass bug or a blocked attempt; the request was not sent",
            )
        body = {"query": document, "variables": variables, "operationName": docs.operation_name(document)}
        resp = await self.http.request("POST", GRAPHQL, json=body, expect=(400,))
        data = resp.json()
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors:
            raise self._graphql_error(errors, resp.status, resp.headers)
        if resp.status != 200 or not isinstance(data.get("data"), dict):
            raise UpstreamError(f"linear answered {resp.status} without data", upstream_status=resp.status)
        result: dict[str, Any] = data["data"]
        return result

    @staticmethod
    def _graphql_error(errors: list[Any], status: int, headers: httpx2.Headers) -> Exception:
        first: dict[str, Any] = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
        ext: dict[str, Any] = first.get("extensions") or {}
        code = str(ext.get("code") or "").upper()
        kind = str(ext.get("type") or "").lower()
        message = str(ext.get("userPresentableMessage") or first.get("message") or "error")
        if code in ("AUTHENTICATION_ERROR", "FORBIDDEN") or kind in ("authentication error", "forbidden"):
            return MissingAccess(f"linear refused the request: {message}", hint=ACCESS_HINT, upstream_status=status)
        if code == "RATELIMITED" or kind == "ratelimited":
            return RateLimited(f"linear rate limit reached: {message}", retry_after_s=epoch_ms_reset_seconds(headers),
                               upstream_status=status)
        if "not found" in str(first.get("message") or "").lower() or "could not find" in message.lower():
            return NotFound(f"linear: {message}", upstream_status=status)
        return UpstreamError(f"linear GraphQL error: {message}", upstream_status=status,
                             hint="the request was rejected; check the arguments")


class LinearClient(_LinearGraphQL):
    """Read toolset client: the three read queries, nothing else."""

    documents = docs.READ_DOCUMENTS

    def __init__(self, settings: LinearSettings, env: ClientEnv, routes: tuple[Route, ...] = READ_ROUTES) -> None:
        super().__init__(settings, env, routes)

    async def search_issues(self, flt: dict[str, Any], first: int, after: str | None) -> Connection:
        data = await self.run(docs.SEARCH_ISSUES, {"filter": flt, "first": first, "after": after})
        return parse_connection(data.get("issues"))

    async def get_issue(self, key_or_id: str) -> IssueDetail:
        data = await self.run(docs.GET_ISSUE, {"id": key_or_id})
        node = data.get("issue")
        if not isinstance(node, dict):
            raise NotFound(f"linear: issue {key_or_id!r} not found")
        return parse_issue_detail(node)

    async def list_projects(self, flt: dict[str, Any] | None, first: int, after: str | None) -> Connection:
        data = await self.run(docs.LIST_PROJECTS, {"filter": flt, "first": first, "after": after})
        return parse_connection(data.get("projects"))


class LinearWriteClient(_LinearGraphQL):
    """``linear_write`` client: team/issue lookups for the scope check, and the two mutations."""

    documents = docs.WRITE_DOCUMENTS

    def __init__(self, settings: LinearSettings, env: ClientEnv, routes: tuple[Route, ...] = WRITE_ROUTES) -> None:
        super().__init__(settings, env, routes)

    async def team_id(self, key: str) -> str | None:
        data = await self.run(docs.TEAM_BY_KEY, {"key": key})
        nodes = parse_connection(data.get("teams")).nodes
        return str(nodes[0]["id"]) if nodes and nodes[0].get("key") == key else None

    async def issue_team(self, key_or_id: str) -> tuple[str, str, str]:
        """(id, identifier, team key) of an issue."""
        data = await self.run(docs.ISSUE_TEAM, {"id": key_or_id})
        node = data.get("issue")
        if not isinstance(node, dict):
            raise NotFound(f"linear: issue {key_or_id!r} not found")
        team = node.get("team") or {}
        return str(node.get("id") or ""), str(node.get("identifier") or ""), str(team.get("key") or "")

    async def create_issue(self, team_id: str, title: str, description: str | None,
                           priority: int | None) -> dict[str, str]:
        payload: dict[str, Any] = {"teamId": team_id, "title": title}
        if description:
            payload["description"] = description
        if priority is not None:
            payload["priority"] = priority
        data = await self.run(docs.CREATE_ISSUE, {"input": payload})
        result = data.get("issueCreate") or {}
        issue = result.get("issue") or {}
        if not result.get("success") or not issue:
            raise UpstreamError("linear did not create the issue (success=false)")
        return {k: str(issue.get(k) or "") for k in ("identifier", "title", "url")}

    async def add_comment(self, issue_id: str, body: str) -> dict[str, str]:
        data = await self.run(docs.ADD_COMMENT, {"input": {"issueId": issue_id, "body": body}})
        result = data.get("commentCreate") or {}
        comment = result.get("comment") or {}
        if not result.get("success") or not comment:
            raise UpstreamError("linear did not add the comment (success=false)")
        issue = comment.get("issue") or {}
        return {"url": str(comment.get("url") or ""), "at": str(comment.get("createdAt") or ""),
                "issue": str(issue.get("identifier") or "")}


def make_client(env: ClientEnv) -> LinearClient:
    return LinearClient(LinearSettings.from_env(env.env), env)


def make_write_client(env: ClientEnv) -> LinearWriteClient:
    return LinearWriteClient(LinearSettings.from_env(env.env), env)
