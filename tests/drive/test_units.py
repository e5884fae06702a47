"""Pure Drive pieces as tables: ids from URLs, query literals, paging, XLSX/PDF conversion, the fake's q."""

from __future__ import annotations

import io
import zipfile

import pytest

from guards.redact import Redactor
from servers._core.fakekit import CANARY_AWS_KEY
from servers.drive import convert
from servers.drive.fake import BadQuery, FakeFile, apply_fields, build_pdf, build_xlsx, parse_fields, parse_q
from servers.drive.models import file_id, q_literal
from servers.drive.tools import page_of


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("doc-runbook-checkout", "doc-runbook-checkout"),
        ("https://docs.google.com/document/d/1AbC_dEf-9/edit#heading=h.x", "1AbC_dEf-9"),
        ("https://docs.google.com/spreadsheets/d/sht-oncall-rota/edit?gid=0", "sht-oncall-rota"),
        ("https://drive.google.com/drive/folders/fld-runbooks", "fld-runbooks"),
        ("https://drive.google.com/file/d/pdf-pool-loadtest/view", "pdf-pool-loadtest"),
        ("https://drive.google.com/open?id=abc123", "abc123"),
        ("http://docs.google.com/document/d/abc/edit", None),  # not https: not parsed
        ("../../etc/passwd", None),
        ("a b", None),
    ],
)
def test_a_file_id_is_taken_from_an_id_or_a_drive_url(ref: str, expected: str | None) -> None:
    assert file_id(ref) == expected


@pytest.mark.parametrize(
    ("value", "literal"),
    [("runbook", "'runbook'"), ("it's", "'it\\'s'"), ("a\\b", "'a\\\\b'"),
     ("x' or name contains 'y", "'x\\' or name contains \\'y'")],
)
def test_query_literals_escape_quotes_and_backslashes(value: str, literal: str) -> None:
    assert q_literal(value) == literal


def test_an_escaped_literal_is_one_value_to_the_drive_query_parser() -> None:
    pred = parse_q(f"name contains {q_literal(chr(39) + ' or name contains ' + chr(39))}")
    f = FakeFile("x", "Checkout runbook", "text/plain", [], None, "alice")  # type: ignore[arg-type]
    assert pred(f) is False


def test_pages_end_at_a_line_break_and_resume_exactly_where_they_ended() -> None:
    text = "".join(f"line {i:04d} " + "x" * 40 + "\n" for i in range(600))
    pages, offset = [], 0
    while offset < len(text):
        chunk, offset = page_of(text, offset, size=5000)
        pages.append(chunk)
    assert "".join(pages) == text
    assert all(p.endswith("\n") for p in pages)
    assert all(len(p) <= 5000 for p in pages)


def test_a_secret_straddling_a_page_boundary_is_redacted_before_the_cut() -> None:
    text = "a" * 4990 + f" key={CANARY_AWS_KEY} " + "b" * 100
    redacted = Redactor().text(text)  # what file_text caches: redaction first, paging after
    first, end = page_of(redacted, 0, size=5000)
    second, _ = page_of(redacted, end, size=5000)
    assert CANARY_AWS_KEY[:5] not in first + second and "[REDACTED:aws_access_key]" in first + second
    cut, _ = page_of(text, 0, size=5000)  # the naive order would have leaked a fragment
    assert cut.endswith(CANARY_AWS_KEY[:5]) and Redactor().text(cut) == cut


def test_an_xlsx_export_becomes_csv_per_sheet_with_dates_and_strings() -> None:
    data = build_xlsx([("Rota", [["Week of", "Primary"], [("date", 46339), "alice"], [("date", 46346), "bob, jr"]]),
                       ("Notes", [["n"], ["1.5"], [2]])])
    sheets = convert.xlsx_sheets(data)
    assert [s.name for s in sheets] == ["Rota", "Notes"]
    assert sheets[0].csv() == 'Week of,Primary\n2026-11-13,alice\n2026-11-20,"bob, jr"\n'
    assert sheets[1].rows == [["n"], ["1.5"], ["2"]]


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in files.items():
            z.writestr(name, body)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"not a zip", "not a valid XLSX"),
        (_zip({"xl/workbook.xml": b"<!DOCTYPE x [<!ENTITY a 'b'>]><workbook/>",
               "xl/_rels/workbook.xml.rels": b"<Relationships/>"}), "declares a DTD"),
        (_zip({"big": b"\0" * (convert.MAX_UNZIPPED + 1)}), "inflates beyond"),
    ],
)
def test_hostile_spreadsheets_are_refused_not_expanded(data: bytes, says: str) -> None:
    with pytest.raises(convert.Unreadable, match=says):
        convert.xlsx_sheets(data)


def test_pdf_text_is_extracted_per_page_and_a_page_cap_is_stated() -> None:
    pdf = build_pdf([["first page"], ["second (page)"], ["third"]])
    full = convert.pdf_text(pdf)
    assert full.pages == 3 and full.pages_read == 3
    assert "--- page 2 ---\nsecond (page)" in full.text
    capped = convert.pdf_text(pdf, max_pages=2)
    assert capped.pages == 3 and capped.pages_read == 2 and "third" not in capped.text
    with pytest.raises(convert.Unreadable, match="cannot be parsed"):
        convert.pdf_text(b"%PDF-1.4 garbage")


@pytest.mark.parametrize(
    "q",
    ["name = 'x'", "fullText contains", "mimeType contains 'x'", "'a' in owners", "trashed = maybe",
     "(name contains 'x'", "name contains 'x' and", "size > 10"],
)
def test_the_fake_rejects_query_syntax_drive_would_reject(q: str) -> None:
    with pytest.raises(BadQuery):
        parse_q(q)


def test_field_masks_keep_only_the_requested_fields() -> None:
    body = {"kind": "k", "nextPageToken": "t", "files": [{"id": "1", "name": "n", "owners": [{"displayName": "A",
                                                                                               "me": True}]}]}
    assert apply_fields(body, parse_fields("nextPageToken,files(id,owners(displayName))")) == {
        "nextPageToken": "t", "files": [{"id": "1", "owners": [{"displayName": "A"}]}]}
