"""The only Drive module that talks HTTP (with auth.py's token route). Every route is listed here."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from servers._core.cache import TTLCache
from servers._core.egress import EgressClient, Response, Route, default_error_message, retry_after_seconds
from servers._core.errors import InvalidArguments, MissingAccess, NotFound, RateLimited, ToolFailure, UpstreamError
from servers._core.spec import ClientEnv
from servers.drive.auth import TokenSource, token_route
from servers.drive.models import DriveFile, parse_file
from servers.drive.settings import DriveSettings

FILES_LIST = Route("GET", "/drive/v3/files")
FILES_GET = Route("GET", "/drive/v3/files/{fileId}")  # metadata, or content with alt=media
FILES_EXPORT = Route("GET", "/drive/v3/files/{fileId}/export")
DRIVES_GET = Route("GET", "/drive/v3/drives/{driveId}")
ROUTES: tuple[Route, ...] = (FILES_LIST, FILES_GET, FILES_EXPORT, DRIVES_GET)

FILE_FIELDS = ("id,name,mimeType,parents,driveId,size,modifiedTime,createdTime,webViewLink,trashed,version,"
               "description,owners(displayName,emailAddress),lastModifyingUser(displayName,emailAddress),"
               "shortcutDetails(targetId,targetMimeType)")
LIST_FIELDS = f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"
CACHE_TTL_S = 300.0
MAX_BYTES = 8 * 1024 * 1024

def _reason(body: bytes) -> str:
    try:
        errors = json.loads(body)["error"].get("errors") or []
        return str(errors[0].get("reason") or "")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return ""


class DriveClient:
    def __init__(self, settings: DriveSettings, env: ClientEnv, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        for key in ("private_key", "client_secret", "refresh_token"):
            if settings.info.get(key):
                env.register_secret(str(settings.info[key]))
        hint = (f"share the file or folder with {settings.principal}, and check the drive.readonly scope "
                f"({settings.source})")
        self.http = EgressClient(upstream="drive", base_url=settings.base_url, routes=ROUTES, transport=env.transport,
                                 access_hint=hint, max_response_bytes=MAX_BYTES)
        token_base, route = token_route(settings)
        self.token_http = EgressClient(upstream="drive", base_url=token_base, routes=(route,),
                                       transport=env.transport)
        self.auth = TokenSource(settings, self.token_http, route, env.register_secret)
        self.access_hint = hint
        self.meta: TTLCache[str, DriveFile] = TTLCache(CACHE_TTL_S, 2000, clock)
        self.drives: TTLCache[str, str] = TTLCache(CACHE_TTL_S, 200, clock)
        self.texts: TTLCache[tuple[str, str], tuple[str, str]] = TTLCache(CACHE_TTL_S, 8, clock)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.token_http.aclose()

    async def _get(self, route: Route, *, path: Mapping[str, str] | None = None,
                   params: Mapping[str, Any] | None = None) -> Response:
        for attempt in (1, 2):
            token = await self.auth.token(force=attempt == 2)
            resp = await self.http.request("GET", route.template, path_params=path, params=params,
                                           headers={"Authorization": f"Bearer {token}"}, expect=(401, 403))
            if resp.status == 401 and attempt == 1:
                continue  # an expired or revoked token: refresh once
            if resp.status in (401, 403):
                raise self._refused(resp)
            return resp
        raise AssertionError("unreachable")

    def _refused(self, resp: Response) -> ToolFailure:
        reason, msg = _reason(resp.content), default_error_message(resp.content)
        if reason in ("rateLimitExceeded", "userRateLimitExceeded", "sharingRateLimitExceeded"):
            return RateLimited(f"drive rate limit reached: {msg}", retry_after_s=retry_after_seconds(resp.headers),
                               upstream_status=resp.status)
        if reason == "exportSizeLimitExceeded":
            return UpstreamError("drive: the file is too large to export (Drive's export limit is 10 MB)",
                                 upstream_status=403, hint="open it with the link from drive_get_file")
        if reason in ("fileNotDownloadable", "cannotExportFile", "fileNotExportable"):
            return InvalidArguments(f"drive: this file cannot be read as text ({msg})")
        return MissingAccess(f"drive answered {resp.status}: {msg}", hint=self.access_hint,
                             upstream_status=resp.status)

    # --- metadata --------------------------------------------------------------------------------
    async def get_file(self, fid: str) -> DriveFile:
        resp = await self._get(FILES_GET, path={"fileId": fid},
                               params={"fields": FILE_FIELDS, "supportsAllDrives": "true"})
        return self.meta.put(fid, parse_file(resp.json()))

    async def cached_file(self, fid: str) -> DriveFile:
        return self.meta.get(fid) or await self.get_file(fid)

    async def ancestors(self, f: DriveFile, max_depth: int = 32) -> set[str]:
        """Every folder above ``f`` (and its shared drive id); parents are fetched once and cached."""
        seen: set[str] = set()
        frontier = list(f.parents)
        if f.drive_id:
            seen.add(f.drive_id)
        for _ in range(max_depth):
            nxt: list[str] = []
            for pid in frontier:
                if pid in seen:
                    continue
                seen.add(pid)
                try:
                    parent = await self.cached_file(pid)
                except (NotFound, MissingAccess):
                    continue  # a parent we may not see ends that branch (e.g. a shared drive root)
                nxt.extend(parent.parents)
                if parent.drive_id:
                    seen.add(parent.drive_id)
            if not nxt:
                break
            frontier = nxt
        return seen

    async def list_files(self, q: str, *, page_size: int, page_token: str | None,
                         order_by: str = "modifiedTime desc") -> tuple[list[DriveFile], str | None]:
        params = {"q": q, "pageSize": page_size, "pageToken": page_token, "orderBy": order_by, "fields": LIST_FIELDS,
                  "corpora": "allDrives", "includeItemsFromAllDrives": "true", "supportsAllDrives": "true"}
        resp = await self._get(FILES_LIST, params={k: v for k, v in params.items() if v is not None})
        data = resp.json()
        files = [parse_file(f) for f in data.get("files") or []]
        for f in files:
            self.meta.put(f.id, f)
        return files, data.get("nextPageToken") or None

    async def drive_name(self, drive_id: str) -> str:
        cached = self.drives.get(drive_id)
        if cached is None:
            try:
                resp = await self._get(DRIVES_GET, path={"driveId": drive_id}, params={"fields": "id,name"})
                cached = str(resp.json().get("name") or drive_id)
            except (NotFound, MissingAccess):
                cached = drive_id
            self.drives.put(drive_id, cached)
        return cached

    # --- content ---------------------------------------------------------------------------------
    async def export(self, fid: str, mime: str) -> bytes:
        return (await self._get(FILES_EXPORT, path={"fileId": fid}, params={"mimeType": mime})).content

    async def download(self, fid: str) -> bytes:
        params = {"alt": "media", "supportsAllDrives": "true"}
        return (await self._get(FILES_GET, path={"fileId": fid}, params=params)).content


def make_client(env: ClientEnv) -> DriveClient:
    return DriveClient(DriveSettings.from_env(env.env), env)
