"""The HTML report rendered by a real browser (Debian's headless Chromium): its charts draw."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.audit import synthetic_events
from guards.report import ReportBuilder
from servers.report_html import COLORS, render_html

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (scripts/test --all installs it from "
                    "scripts/system-packages.txt when run as root)")
    start = datetime(2026, 11, 20, tzinfo=UTC)
    builder = ReportBuilder(start, start + timedelta(hours=12))
    for e in synthetic_events(4000, start, span=timedelta(hours=12)):
        builder.add_event(e)
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(builder.build()), encoding="utf-8")
    return path


def chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, timeout=90, check=False, cwd=tmp)


def test_every_chart_lays_out_its_marks_in_the_browser(page: Path, tmp_path: Path) -> None:
    done = chromium(page, tmp_path, "--virtual-time-budget=2000", "--dump-dom")
    dom = done.stdout.decode()
    m = re.search(r"data-drawn=\"([^\"]+)\"", dom)
    assert m, f"the page's script did not run; chromium said: {done.stderr.decode()[-400:]}"
    drawn = json.loads(m.group(1).replace("&quot;", '"'))
    assert set(drawn) == {"chart-timeline", "chart-idle", "chart-tools", "chart-rules", "chart-headroom"}
    assert drawn["chart-timeline"]["marks"] >= 12 * 5 and drawn["chart-timeline"]["area"] > 20000
    for chart in ("chart-idle", "chart-tools", "chart-rules", "chart-headroom"):
        assert drawn[chart]["marks"] > 0 and drawn[chart]["area"] > 100, chart


def read_png(path: Path) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw pixels) of an 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif f == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out += line
        prev = line
    return width, height, bpp, bytes(out)


def test_the_screenshot_shows_the_charts_in_their_colours(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    chromium(page, tmp_path, "--window-size=900,900", f"--screenshot={shot}")
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, bpp, px = read_png(shot)
    counts = dict.fromkeys(COLORS, 0)
    wanted = {bytes.fromhex(c[1:]): name for name, c in COLORS.items()}
    for i in range(0, len(px), bpp):
        name = wanted.get(px[i : i + 3])
        if name:
            counts[name] += 1
    assert counts["ok"] > 10000, counts  # the timeline's success bars dominate the top of the page
    assert all(counts[c] > 50 for c in ("missing_access", "human_gate", "missing_context", "upstream_failure")), counts
    blank = sum(1 for i in range(0, len(px), bpp) if px[i : i + 3] in (b"\xff\xff\xff", b"\xf8\xf9\xfa"))
    assert blank < 0.95 * width * height
