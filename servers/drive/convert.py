"""What Drive returns, as text: XLSX (a Sheet's export) to CSV per sheet, PDF to text, bytes to str.

Pure functions over bytes; stdlib only except PDF, which uses the optional ``pypdf`` (pure Python,
imported on first use). Archives are checked before they are inflated: a zip bomb or an XML
document with a DTD is refused, never expanded.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from xml.etree import ElementTree as ET

MAX_UNZIPPED = 40 * 1024 * 1024
MAX_PDF_PAGES = 300
_M = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PR = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DATE_FORMATS = set(range(14, 23)) | {45, 46, 47}


class Unreadable(ValueError):
    """The content cannot be turned into text; the message says why."""


def decode_text(data: bytes) -> str:
    for enc in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")


def _xml(z: zipfile.ZipFile, name: str) -> ET.Element:
    raw = z.read(name)
    if b"<!DOCTYPE" in raw[:4096].upper() or b"<!ENTITY" in raw[:4096].upper():
        raise Unreadable(f"spreadsheet part {name} declares a DTD; refused")
    return ET.fromstring(raw)


def _col(ref: str) -> int:
    n = 0
    for ch in re.match(r"[A-Z]*", ref or "").group(0):  # type: ignore[union-attr]
        n = n * 26 + ord(ch) - 64
    return max(n - 1, 0)


def _date_styles(z: zipfile.ZipFile) -> set[int]:
    """Indexes of cell styles whose number format is a date."""
    if "xl/styles.xml" not in z.namelist():
        return set()
    styles = _xml(z, "xl/styles.xml")
    custom = {int(f.get("numFmtId", "0")) for f in styles.iter(f"{_M}numFmt")
              if re.search(r"[dmy]", re.sub(r'"[^"]*"|\[[^]]*]', "", f.get("formatCode", "")), re.I)}
    xfs = styles.find(f"{_M}cellXfs")
    return {i for i, xf in enumerate(xfs if xfs is not None else [])
            if int(xf.get("numFmtId", "0")) in _DATE_FORMATS | custom}


def _number(v: str, as_date: bool) -> str:
    try:
        f = float(v)
    except ValueError:
        return v
    if as_date and 0 < f < 2958466:
        d = date(1899, 12, 30) + timedelta(days=int(f))
        return d.isoformat()
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else format(f, ".15g")


@dataclass(frozen=True)
class Sheet:
    name: str
    rows: list[list[str]]

    def csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerows(self.rows)
        return out.getvalue()


def xlsx_sheets(data: bytes) -> list[Sheet]:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Unreadable("the spreadsheet export is not a valid XLSX file") from None
    with z:
        if sum(i.file_size for i in z.infolist()) > MAX_UNZIPPED:
            raise Unreadable(f"the spreadsheet inflates beyond {MAX_UNZIPPED // 2**20} MB; refused")
        names = set(z.namelist())
        shared = []
        if "xl/sharedStrings.xml" in names:
            shared = ["".join(t.text or "" for t in si.iter(f"{_M}t")) for si in _xml(z, "xl/sharedStrings.xml")]
        date_styles = _date_styles(z)
        rel_root = _xml(z, "xl/_rels/workbook.xml.rels")
        rels = {r.get("Id"): r.get("Target", "") for r in rel_root.iter(f"{_PR}Relationship")}
        sheets: list[Sheet] = []
        for s in _xml(z, "xl/workbook.xml").iter(f"{_M}sheet"):
            target = rels.get(s.get(f"{_R}id"), "")
            path = target.lstrip("/") if target.startswith("/") else "xl/" + target
            if path not in names:
                continue
            rows: list[list[str]] = []
            for row in _xml(z, path).iter(f"{_M}row"):
                r = int(row.get("r") or len(rows) + 1)
                while len(rows) < r - 1:
                    rows.append([])
                cells: dict[int, str] = {}
                for c in row.iter(f"{_M}c"):
                    t, v = c.get("t"), c.findtext(f"{_M}v") or ""
                    if t == "s":
                        val = shared[int(v)] if v.isdigit() and int(v) < len(shared) else ""
                    elif t == "inlineStr":
                        val = "".join(x.text or "" for x in c.iter(f"{_M}t"))
                    elif t == "b":
                        val = "TRUE" if v == "1" else "FALSE"
                    elif t in ("str", "e"):
                        val = v
                    else:
                        val = _number(v, int(c.get("s") or 0) in date_styles) if v else ""
                    cells[_col(c.get("r", ""))] = val
                rows.append([cells.get(i, "") for i in range(max(cells) + 1)] if cells else [])
            while rows and not rows[-1]:
                rows.pop()
            sheets.append(Sheet(s.get("name") or f"Sheet{len(sheets) + 1}", rows))
        return sheets


@dataclass(frozen=True)
class PdfText:
    text: str
    pages: int
    pages_read: int


def pdf_text(data: bytes, max_pages: int = MAX_PDF_PAGES) -> PdfText:
    """Text of a PDF's pages (CPU-bound: call it in a worker thread)."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise Unreadable("PDF text extraction needs the optional 'pypdf' package "
                         "(pip install 'spyglass-mcp[pdf]'); open the file's link instead") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("the PDF is password-protected")
        n = len(reader.pages)
        parts = []
        for i in range(min(n, max_pages)):
            parts.append(f"--- page {i + 1} ---\n{(reader.pages[i].extract_text() or '').strip()}")
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
        if isinstance(e, Unreadable):
            raise
        raise Unreadable(f"the PDF cannot be parsed ({type(e).__name__})") from None
    return PdfText("\n".join(parts), n, min(n, max_pages))
