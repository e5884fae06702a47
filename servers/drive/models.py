"""Drive files as the tools use them, and the few MIME types that matter."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from servers._core.timeparse import parse_lenient_dt

FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# The `type` filter of drive_search_files.
TYPE_MIMES = {"doc": DOC, "sheet": SHEET, "slides": SLIDES, "pdf": PDF, "folder": FOLDER, "text": "text/plain"}
_LABELS = {DOC: "doc", SHEET: "sheet", SLIDES: "slides", PDF: "pdf", FOLDER: "folder", SHORTCUT: "shortcut"}
TEXT_MIMES = ("application/json", "application/xml", "application/x-yaml", "application/yaml", "application/toml",
              "application/javascript", "application/x-sh", "application/sql")

_ID = r"[A-Za-z0-9_-]{3,200}"
_URL_ID = re.compile(rf"/(?:d|folders|file/d)/({_ID})|[?&]id=({_ID})")
ID_RE = re.compile(rf"^{_ID}$")


def label(mime: str) -> str:
    return _LABELS.get(mime) or mime.removeprefix("application/vnd.google-apps.")


def file_id(ref: str) -> str | None:
    """A file id from an id or a Drive/Docs URL (parsed locally; nothing is fetched)."""
    ref = ref.strip()
    if ID_RE.match(ref):
        return ref
    m = _URL_ID.search(ref) if ref.startswith("https://") else None
    return (m.group(1) or m.group(2)) if m else None


def _person(p: Any) -> str:
    if not isinstance(p, Mapping):
        return ""
    name, email = p.get("displayName") or "", p.get("emailAddress") or ""
    return f"{name} <{email}>" if name and email else str(name or email)


@dataclass(frozen=True)
class DriveFile:
    id: str
    name: str
    mime: str
    parents: tuple[str, ...] = ()
    drive_id: str = ""
    size: int | None = None
    modified: datetime | None = None
    created: datetime | None = None
    modified_by: str = ""
    owners: tuple[str, ...] = ()
    link: str = ""
    description: str = ""
    trashed: bool = False
    version: str = ""
    target_id: str = ""  # shortcuts
    target_mime: str = ""

    @property
    def kind(self) -> str:
        return label(self.mime)


def parse_file(f: Mapping[str, Any]) -> DriveFile:
    sc = f.get("shortcutDetails") or {}
    size = f.get("size")
    return DriveFile(
        id=str(f.get("id") or ""),
        name=str(f.get("name") or ""),
        mime=str(f.get("mimeType") or ""),
        parents=tuple(str(p) for p in f.get("parents") or ()),
        drive_id=str(f.get("driveId") or ""),
        size=int(size) if isinstance(size, str | int) and str(size).isdigit() else None,
        modified=parse_lenient_dt(f.get("modifiedTime")),
        created=parse_lenient_dt(f.get("createdTime")),
        modified_by=_person(f.get("lastModifyingUser")),
        owners=tuple(_person(o) for o in f.get("owners") or () if _person(o)),
        link=str(f.get("webViewLink") or ""),
        description=str(f.get("description") or ""),
        trashed=bool(f.get("trashed")),
        version=str(f.get("version") or ""),
        target_id=str(sc.get("targetId") or "") if isinstance(sc, Mapping) else "",
        target_mime=str(sc.get("targetMimeType") or "") if isinstance(sc, Mapping) else "",
    )


def q_literal(value: str) -> str:
    """A Drive query string literal: quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
