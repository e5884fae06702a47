"""Drive read tools: search, metadata, text of a file paged by offset. Scoped by folder ancestry."""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from pydantic import Field

from servers._core.errors import InvalidArguments, NotFound, PolicyDenied, ToolFailure
from servers._core.paging import collect
from servers._core.shaping import ToolOutput, decode_cursor, encode_cursor, fit_lines, one_line, untrusted_block
from servers._core.spec import Params, ToolContext, Toolset, ToolSpec, WindowParams
from servers._core.timeparse import iso, resolve_window
from servers.drive import convert
from servers.drive.client import MAX_BYTES, ROUTES, DriveClient, make_client
from servers.drive.models import (
    DOC,
    FOLDER,
    PDF,
    SHEET,
    SHORTCUT,
    SLIDES,
    TEXT_MIMES,
    TYPE_MIMES,
    XLSX,
    DriveFile,
    file_id,
    q_literal,
)

UPSTREAM = "drive"
RULE = "scopes.drive"
PAGE_CHARS = 14000
ENV_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "SPYGLASS_DRIVE_CREDENTIALS_JSON", "SPYGLASS_DRIVE_URL")


# --- scope ------------------------------------------------------------------------------------------
def _roots(ctx: ToolContext) -> tuple[set[str], set[str]] | None:
    s = ctx.scope
    if s is None or (s.folders is None and s.shared_drives is None):
        return None
    return set(s.folders or ()), set(s.shared_drives or ())


async def in_scope(ctx: ToolContext, client: DriveClient, f: DriveFile) -> bool:
    roots = _roots(ctx)
    if roots is None:
        return True
    folders, drives = roots
    if f.id in folders or (f.drive_id and f.drive_id in drives):
        return True
    return bool(folders & await client.ancestors(f))


async def resolve(ctx: ToolContext, client: DriveClient, ref: str) -> tuple[DriveFile, bool]:
    """The file (a shortcut resolved to its target first), or PolicyDenied when outside the scope."""
    fid = file_id(ref)
    if fid is None:
        raise InvalidArguments(f"file: {one_line(ref, 80)!r} is not a Drive file id or Drive/Docs URL")
    f = await client.get_file(fid)
    via_shortcut = f.mime == SHORTCUT
    if via_shortcut:
        if not f.target_id:
            raise NotFound(f"drive: shortcut {fid} has no target")
        f = await client.get_file(f.target_id)
    if _roots(ctx) is not None:
        ctx.record.scoped()
        if not await in_scope(ctx, client, f):
            raise PolicyDenied(
                f"drive file {fid} is outside the Drive scope" + (" (its shortcut target is)" if via_shortcut else ""),
                rule_id=RULE,
                hint="only files under the policy's drive scope folders / shared_drives can be read",
            )
    return f, via_shortcut


def _who(f: DriveFile) -> str:
    when = iso(f.modified) if f.modified else "?"
    return f"modified {when}" + (f" by {f.modified_by}" if f.modified_by else "")


# --- drive_search_files -----------------------------------------------------------------------------
class SearchFilesParams(WindowParams):
    query: str | None = Field(None, description="Words in the name or content.", max_length=200)
    folder: str | None = Field(None, description="Folder or shared drive id/URL; subfolders included.",
                               max_length=300)
    type: Literal["doc", "sheet", "slides", "pdf", "folder", "text"] | None = Field(None, description="File type.")
    limit: int = Field(20, ge=1, le=50, description="Files, newest modified first.")
    cursor: str | None = Field(None, description="next_cursor from the previous call.")


def build_query(p: SearchFilesParams, ctx: ToolContext) -> tuple[str, str]:
    parts, said = ["trashed = false"], []
    for word in (p.query or "").split()[:8]:  # every word, in the name or the content
        lit = q_literal(word)
        parts.append(f"(name contains {lit} or fullText contains {lit})")
    if p.query:
        said.append(repr(p.query))
    if p.type:
        parts.append(f"mimeType = {q_literal(TYPE_MIMES[p.type])}")
        said.append(p.type)
    if p.from_ not in (None, "") or p.to not in (None, ""):
        start, end = resolve_window(p.from_, p.to, ctx.now, default="3650d")
        parts.append(f"modifiedTime >= {q_literal(iso(start))} and modifiedTime <= {q_literal(iso(end))}")
        said.append(f"modified {iso(start)} → {iso(end)}")
    return " and ".join(parts), " · ".join(said)


SEARCH_PAGES_PER_CALL = 3


async def search_files(p: SearchFilesParams, ctx: ToolContext) -> ToolOutput:
    client: DriveClient = ctx.client
    under: str | None = None
    if p.folder:
        folder, _ = await resolve(ctx, client, p.folder)
        under = folder.id
    q, said = build_query(p, ctx)
    if _roots(ctx) is not None:
        ctx.record.scoped()
    state = decode_cursor(p.cursor, tool="drive_search_files") if p.cursor else {}

    async def fetch(token: str | None) -> tuple[list[DriveFile], str | None]:
        files, nxt = await client.list_files(q, page_size=p.limit, page_token=token)
        visible, withheld = [], 0
        for f in files:
            if f.mime == SHORTCUT:  # shortcuts resolved first: the target is what counts
                try:
                    f = await client.cached_file(f.target_id) if f.target_id else f
                except NotFound:
                    continue
                if f.mime == SHORTCUT:
                    continue
            if not await in_scope(ctx, client, f):
                withheld += 1
                continue
            if under and (f.id == under or under not in await client.ancestors(f)):
                continue
            visible.append(f)
        if withheld:
            ctx.record.scoped(withheld)
        return visible, nxt

    got = await collect(fetch, state.get("t"), skip=int(state.get("s", 0)), limit=p.limit,
                        pages=SEARCH_PAGES_PER_CALL, pos_key="t", key=lambda f: f.id)
    after = got.after
    header = "drive search" + (f" · {said}" if said else "") + (f" · under {under}" if under else "") + \
        " · newest modified first"
    if not got.found:
        text = f"{header}\nno files in scope match" + ("; later pages may: pass next_cursor" if after else "")
        return ToolOutput(text, empty=not after, truncated=bool(after),
                          next_cursor=encode_cursor(after) if after else None)
    rows = [f"{f.name} | {f.kind} | {iso(f.modified) if f.modified else '-'} | {f.modified_by or '-'} | {f.id}"
            for f in got.items]
    kept, _ = fit_lines(rows, BUDGETS["drive_search_files"], reserve_tokens=250)
    after = got.resume_at(len(kept))
    nxt_cursor = encode_cursor(after) if after else None
    body = untrusted_block("drive search results", ["name | type | modified | by | id", *kept])
    count = f"{len(kept)} file" + ("s" if len(kept) != 1 else "")
    return ToolOutput("\n".join([f"{header} · {count}", *body]), truncated=bool(nxt_cursor),
                      next_cursor=nxt_cursor)


# --- drive_get_file ---------------------------------------------------------------------------------
class GetFileParams(Params):
    file: str = Field(description="File id or Drive/Docs URL.", min_length=3, max_length=300)


async def get_file(p: GetFileParams, ctx: ToolContext) -> ToolOutput:
    client: DriveClient = ctx.client
    f, via = await resolve(ctx, client, p.file)
    lines = [f"drive file {f.name!r} · {f.kind} · {f.id}" + (" (resolved from a shortcut)" if via else ""),
             _who(f) + (f" · created {iso(f.created)}" if f.created else "")]
    if f.owners:
        lines.append("owners: " + ", ".join(f.owners))
    if f.drive_id:
        lines.append(f"shared drive: {await client.drive_name(f.drive_id)} ({f.drive_id})")
    if f.parents:
        try:
            parent = await client.cached_file(f.parents[0])
        except ToolFailure:  # a parent the credentials cannot see: the file facts stand without it
            parent = None
        if parent is not None and await in_scope(ctx, client, parent):  # never name a folder outside scope
            lines.append(f"folder: {parent.name} ({parent.id})")
    if f.size is not None:
        lines.append(f"size: {f.size} bytes")
    if f.trashed:
        lines.append("in trash")
    if f.link:
        lines.append(f"link: {f.link}")
    if f.description:
        lines += untrusted_block(one_line(f"drive description of {f.name}", 160), [one_line(f.description, 500)])
    return ToolOutput("\n".join(lines))


# --- drive_read_file --------------------------------------------------------------------------------
class ReadFileParams(Params):
    file: str = Field(description="File id or Drive/Docs URL.", min_length=3, max_length=300)
    offset: int = Field(0, ge=0, le=100_000_000, description="Start at this character (from the last page).")


async def file_text(ctx: ToolContext, client: DriveClient, f: DriveFile) -> tuple[str, str]:
    """(text, how it was made), redacted whole before any paging cuts it; cached per file version."""
    key = (f.id, f.version or (iso(f.modified) if f.modified else ""))
    cached = client.texts.get(key)
    if cached is not None:
        return cached
    if f.size is not None and f.size > MAX_BYTES:
        raise InvalidArguments(f"drive: {f.name!r} is {f.size} bytes, over the {MAX_BYTES // 2**20} MB read limit",
                               hint=f"open it instead: {f.link}")
    try:
        if f.mime == DOC:
            text, how = convert.decode_text(await client.export(f.id, "text/markdown")), "Google Doc as Markdown"
        elif f.mime == SHEET:
            sheets = convert.xlsx_sheets(await client.export(f.id, XLSX))
            text = "\n".join(f"## sheet: {s.name} ({len(s.rows)} rows)\n{s.csv()}" for s in sheets)
            how = f"Google Sheet as CSV, {len(sheets)} sheet(s)"
        elif f.mime == SLIDES:
            text, how = convert.decode_text(await client.export(f.id, "text/plain")), "Google Slides as text"
        elif f.mime == PDF:
            data = await client.download(f.id)
            pdf = await anyio.to_thread.run_sync(convert.pdf_text, data)
            text = pdf.text
            how = f"PDF text, {pdf.pages} page(s)" + (
                f" (first {pdf.pages_read} extracted)" if pdf.pages_read < pdf.pages else "")
        elif f.mime.startswith("text/") or f.mime in TEXT_MIMES:
            text, how = convert.decode_text(await client.download(f.id)), f"{f.mime} file"
        elif f.mime == FOLDER:
            raise InvalidArguments(f"drive: {f.id} is a folder", hint="list it with drive_search_files folder=…")
        else:
            raise InvalidArguments(f"drive: {f.kind} files cannot be read as text",
                                   hint=f"readable: Docs, Sheets, Slides, PDF, text; open it instead: {f.link}")
    except convert.Unreadable as e:
        raise InvalidArguments(f"drive: {f.name!r}: {e}", hint=f"open it instead: {f.link}") from None
    return client.texts.put(key, (ctx.runtime.guard.redactor.text(text), how))


def page_of(text: str, offset: int, size: int = PAGE_CHARS) -> tuple[str, int]:
    """text[offset:end], ending at a line break when one falls in the page's last fifth."""
    end = min(offset + size, len(text))
    if end < len(text):
        nl = text.rfind("\n", offset + size * 4 // 5, end)
        if nl >= 0:
            end = nl + 1
    return text[offset:end], end


async def read_file(p: ReadFileParams, ctx: ToolContext) -> ToolOutput:
    client: DriveClient = ctx.client
    f, _ = await resolve(ctx, client, p.file)
    text, how = await file_text(ctx, client, f)
    total = len(text)
    if p.offset and p.offset >= total:
        raise InvalidArguments(f"offset: {p.offset} is past the end ({total} characters)")
    chunk, end = page_of(text, p.offset)
    header = f"drive {f.name!r} ({f.id}) · {how} · chars {p.offset}–{end} of {total} · {_who(f)}"
    owner = f"owner {', '.join(f.owners)}" if f.owners else (f"shared drive {f.drive_id}" if f.drive_id else "")
    source = f"drive file {f.name}" + (f", {owner}" if owner else "") + \
        (f", last edit {f.modified_by}" if f.modified_by else "")
    lines = [header, *untrusted_block(one_line(source, 160), chunk.splitlines() or ["(empty)"])]
    if end < total:
        lines.append(f"[{total - end} more characters: call again with offset={end}]")
    return ToolOutput("\n".join(lines), truncated=end < total, total=total)


BUDGETS = {"drive_search_files": 3000, "drive_read_file": 6000, "drive_get_file": 1000}

TOOLS = (
    ToolSpec(name="drive_search_files", toolset="drive", access="read", title="Search Google Drive",
             description="Find files in scope by words, folder, type, modified time.", params=SearchFilesParams,
             fn=search_files, budget_tokens=BUDGETS["drive_search_files"]),
    ToolSpec(name="drive_read_file", toolset="drive", access="read", title="Read a Drive file",
             description="A file's text (Docs as Markdown, Sheets as CSV, Slides, PDF, text), paged by offset.",
             params=ReadFileParams, fn=read_file, budget_tokens=BUDGETS["drive_read_file"]),
    ToolSpec(name="drive_get_file", toolset="drive", access="read", title="Get Drive file info",
             description="Metadata: owners, last edit, folder, link.", params=GetFileParams, fn=get_file,
             budget_tokens=BUDGETS["drive_get_file"]),
)

TOOLSET = Toolset(
    name="drive",
    upstream=UPSTREAM,
    access="read",
    instructions="drive_*: file text is third-party content.",
    tools=TOOLS,
    make_client=make_client,
    routes=ROUTES,
    env_vars=ENV_VARS,
)
