"""Google Drive v3 as the sandbox serves it: ``/drive/v3/files`` (list with a real ``q`` parser,
field masks, page tokens, shared-drive flags), ``files.get`` (``alt=media`` for binary content),
``files.export`` (Docs → Markdown/text, Sheets → XLSX/CSV, Slides → text), ``drives.get``, Google's
error bodies, and an OAuth token endpoint (``/token``) that verifies the service account's signed
JWT assertion (or an authorized_user refresh token) before it issues bearer tokens.

Story: a "Payments Platform" shared drive holds the checkout runbook (rollback steps), the async
payment pool design doc, an on-call rota Sheet, a Slides deck and a load-test PDF; a shortcut in
the runbooks folder points into "HR private", a folder outside any sensible scope whose document
tests prove never leaks. A canary secret sits inside the runbook and the pool config file.
"""

from __future__ import annotations

import functools
import io
import json
import re
import secrets
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from servers._core.fakekit import CANARY_AWS_KEY, CANARY_PASSWORD_URL, Faults, bearer, page_cursor, page_offset
from servers._core.world import World
from servers.drive.models import DOC, FOLDER, PDF, SHEET, SHORTCUT, SLIDES, XLSX

SA_EMAIL = "spyglass-reader@acme-sandbox.iam.gserviceaccount.com"
SA_KEY_ID = "sandbox-key-1"
OAUTH_CLIENT_ID = "sandbox-client.apps.googleusercontent.com"
OAUTH_CLIENT_SECRET = "sandbox-client-secret-0000"
OAUTH_REFRESH_TOKEN = "1//sandbox-refresh-token-0000000000"
DRIVE_ID, DRIVE_NAME = "0APayPlatform", "Payments Platform"
HR_MARKER = "HR-CONFIDENTIAL-7731"
SCOPE_RO = "https://www.googleapis.com/auth/drive.readonly"


@functools.cache
def _keypair() -> tuple[str, str]:
    """One RSA key per process for the sandbox service account: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def service_account_info(token_uri: str) -> dict[str, str]:
    return {"type": "service_account", "project_id": "acme-sandbox", "private_key_id": SA_KEY_ID,
            "private_key": _keypair()[0], "client_email": SA_EMAIL, "client_id": "100000000000000000001",
            "token_uri": token_uri}


def authorized_user_info(token_uri: str) -> dict[str, str]:
    return {"type": "authorized_user", "client_id": OAUTH_CLIENT_ID, "client_secret": OAUTH_CLIENT_SECRET,
            "refresh_token": OAUTH_REFRESH_TOKEN, "token_uri": token_uri}


# --- content -----------------------------------------------------------------------------------------
RUNBOOK = f"""# Checkout runbook

Owner: payments-platform. On-call: see the [On-call rota](https://docs.google.com/spreadsheets/d/sht-oncall-rota).

## Symptoms

- checkout error rate above 5% (Datadog monitor "checkout error rate")
- `PaymentGatewayTimeout: connection pool exhausted` in checkout logs
- p95 latency of POST /api/checkout above 1 s

## Rollback steps

1. Ramp the `checkout_async_payments` flag down to 10% in Statsig; watch errors for 5 minutes.
2. Roll back checkout to the previous release: `deploy_plan` with service=checkout, env=prod,
   action=rollback, then `deploy_apply` with the plan id.
3. Confirm the error rate is back under 1% and p95 under 300 ms in Datadog.
4. Post the status in #inc-checkout and update the incident ticket.

## Database

Read replica for debugging: {CANARY_PASSWORD_URL}
"""


def design_doc() -> str:
    runs = "\n".join(f"| {i} | {10 if i % 2 else 40} | {150 + (i * 37) % 400} | {900 + (i * 53) % 900} ms |"
                     for i in range(1, 1001))
    return f"""# Design: async payment pool

Author: dana. Status: shipped in checkout 2.14.0.

## Summary

Checkout pays through a pool of asynchronous PayFast connections instead of one blocking client.
The pool size is 10 in 2.14.0; ramp behind `checkout_async_payments` (10% → 50% → 100%).

## Risks

- Pool exhaustion under load: requests wait for a connection, then time out after 3 s.
- Mitigation: raise the pool to 40 before ramping beyond 10%; the flag can ramp down instantly.

## Appendix: load test runs

| run | pool size | rps | p95 |
|---|---|---|---|
{runs}
"""


SLIDES_TEXT = """Checkout Q3 review

Async payment pool: rollout plan 10% → 50% → 100% behind checkout_async_payments.

Open risk: pool size 10 saturates near 380 rps (see load test).
"""
PDF_PAGES = [["Payment pool load test", "Pool size 10 saturates at 380 rps.", "p95 rises above 1 s at saturation."],
             ["Recommendation", "Raise the pool to 40 before ramping beyond 10%."]]
POOL_ENV = f"CHECKOUT_PAYMENT_POOL_SIZE=10\nCHECKOUT_PAYMENT_TIMEOUT_MS=3000\naws_access_key_id={CANARY_AWS_KEY}\n"
HR_DOC = (f"# Compensation review 2026\n\n{HR_MARKER}. Bonus pool for the checkout rollback heroes; salary bands "
          f"attached. Payroll DB: {CANARY_PASSWORD_URL}\n")
ROTA = [("Rota", [["Week of", "Primary", "Secondary"], *[[("date", 46339 + 7 * i), n1, n2] for i, (n1, n2) in
                  enumerate([("alice", "bob"), ("bob", "dana"), ("dana", "alice"), ("alice", "bob")])]]),
        ("Escalation", [["Level", "Who", "When"], ["1", "on-call primary", "page immediately"],
                        ["2", "on-call secondary", "after 15 min"], ["3", "dana (staff eng)", "SEV-1 or SEV-2"]])]


def build_xlsx(sheets: list[tuple[str, list[list[Any]]]]) -> bytes:
    """A small real XLSX: shared strings, a date style (numFmt 14), several sheets."""
    strings: list[str] = []

    def cell(ref: str, v: Any) -> str:
        if isinstance(v, tuple):  # ("date", serial)
            return f'<c r="{ref}" s="1"><v>{v[1]}</v></c>'
        if isinstance(v, int | float) or (isinstance(v, str) and v.isdigit()):
            return f'<c r="{ref}"><v>{v}</v></c>'
        strings.append(str(v))
        return f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>'

    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        wb_sheets, rels = [], []
        for i, (name, rows) in enumerate(sheets, 1):
            xml_rows = "".join(
                f'<row r="{r}">' + "".join(cell(f"{chr(65 + c)}{r}", v) for c, v in enumerate(row)) + "</row>"
                for r, row in enumerate(rows, 1))
            z.writestr(f"xl/worksheets/sheet{i}.xml", f'<?xml version="1.0"?><worksheet {ns}><sheetData>{xml_rows}'
                       "</sheetData></worksheet>")
            wb_sheets.append(f'<sheet name="{escape(name)}" sheetId="{i}" r:id="rId{i}"/>')
            rels.append(f'<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                        f'relationships/worksheet" Target="worksheets/sheet{i}.xml"/>')
        z.writestr("xl/workbook.xml", f'<?xml version="1.0"?><workbook {ns} {rns}><sheets>{"".join(wb_sheets)}'
                   "</sheets></workbook>")
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                   f'openxmlformats.org/package/2006/relationships">{"".join(rels)}</Relationships>')
        z.writestr("xl/sharedStrings.xml", f'<?xml version="1.0"?><sst {ns}>' +
                   "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>")
        z.writestr("xl/styles.xml", f'<?xml version="1.0"?><styleSheet {ns}><cellXfs count="2"><xf numFmtId="0"/>'
                   '<xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>')
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"/>')
    return buf.getvalue()


def build_pdf(pages: list[list[str]]) -> bytes:
    """A small real PDF (Helvetica text, one content stream per page, a correct xref table)."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objs: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    font = 3 + 2 * n
    for i, lines in enumerate(pages):
        stream = "BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(f"({esc(x)}) Tj T*" for x in lines) + " ET"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
                    f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# --- files ---------------------------------------------------------------------------------------------
@dataclass
class FakeFile:
    id: str
    name: str
    mime: str
    parents: list[str]
    modified: datetime
    by: str
    drive: str = DRIVE_ID
    owner: str = ""
    content: Callable[[], Any] | None = None  # str for Docs/text, rows for Sheets, bytes for PDFs
    target: str = ""
    description: str = ""

    def text(self) -> str:
        v = self.content() if self.content else ""
        if isinstance(v, list):
            return "\n".join(",".join(str(c[1] if isinstance(c, tuple) else c) for c in row)
                             for _, rows in v for row in rows)
        return v.decode("latin-1") if isinstance(v, bytes) else str(v)


PEOPLE = {"alice": "Alice Ng", "bob": "Bob Ortiz", "dana": "Dana Kim", "hr": "HR Team"}


def seed(world: World) -> dict[str, FakeFile]:
    a = world.anchor
    d = timedelta(days=1)
    files = [
        FakeFile("fld-runbooks", "Runbooks", FOLDER, [DRIVE_ID], a - 30 * d, "alice"),
        FakeFile("fld-oncall", "On-call", FOLDER, ["fld-runbooks"], a - 30 * d, "alice"),
        FakeFile("fld-design-docs", "Design docs", FOLDER, [DRIVE_ID], a - 30 * d, "dana"),
        FakeFile("doc-runbook-checkout", "Checkout runbook", DOC, ["fld-runbooks"], a - 3 * d, "bob",
                 content=lambda: RUNBOOK, description="Rollback steps for checkout incidents"),
        FakeFile("sht-oncall-rota", "On-call rota", SHEET, ["fld-oncall"], a - 5 * d, "alice",
                 content=lambda: ROTA),
        FakeFile("txt-pool-config", "checkout-pool.env", "text/plain", ["fld-runbooks"], a - 4 * d, "dana",
                 content=lambda: POOL_ENV),
        FakeFile("sc-hr-comp", "Comp review (shortcut)", SHORTCUT, ["fld-runbooks"], a - 2 * d, "bob",
                 target="doc-hr-comp"),
        FakeFile("doc-async-payment-pool", "Design: async payment pool", DOC, ["fld-design-docs"], a - 10 * d,
                 "dana", content=design_doc),
        FakeFile("sld-checkout-q3", "Checkout Q3 review", SLIDES, ["fld-design-docs"], a - 20 * d, "dana",
                 content=lambda: SLIDES_TEXT),
        FakeFile("pdf-pool-loadtest", "Payment pool load test.pdf", PDF, ["fld-design-docs"], a - 12 * d, "dana",
                 content=lambda: build_pdf(PDF_PAGES)),
        FakeFile("sc-oncall-rota", "On-call rota (shortcut)", SHORTCUT, ["fld-design-docs"], a - 5 * d, "alice",
                 target="sht-oncall-rota"),
        FakeFile("fld-hr-private", "HR private", FOLDER, ["0AHrMyDriveRoot"], a - 60 * d, "hr", drive="",
                 owner="hr"),
        FakeFile("doc-hr-comp", "Compensation review 2026 (checkout rollback bonus)", DOC, ["fld-hr-private"],
                 a - 2 * d, "hr", drive="", owner="hr", content=lambda: HR_DOC),
    ]
    return {f.id: f for f in files}


# --- query language ------------------------------------------------------------------------------------
class BadQuery(ValueError):
    pass


_TOKEN = re.compile(r"\s*(?:(?P<s>'(?:[^'\\]|\\.)*')|(?P<op><=|>=|!=|=|<|>|\(|\))|(?P<w>[A-Za-z_][\w.]*))")


def _tokens(q: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    q = q.rstrip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise BadQuery(q[pos:pos + 20])
        pos = m.end()
        if m.group("s"):
            out.append(("s", re.sub(r"\\(.)", r"\1", m.group("s")[1:-1])))
        elif m.group("op"):
            out.append(("op", m.group("op")))
        else:
            out.append(("w", m.group("w")))
    return out


Pred = Callable[[FakeFile], bool]
_FIELDS = {"name", "fullText", "mimeType", "modifiedTime", "trashed", "parents", "starred", "sharedWithMe"}


def parse_q(q: str) -> Pred:
    """Drive's q subset: and/or/not, parentheses, name/fullText contains, mimeType =/!=, modifiedTime
    comparisons, 'id' in parents, trashed = bool. Anything else is Drive's 400 Invalid Value."""
    toks = _tokens(q)
    i = 0

    def peek() -> tuple[str, str] | None:
        return toks[i] if i < len(toks) else None

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(toks):
            raise BadQuery("unexpected end")
        i += 1
        return toks[i - 1]

    def expr() -> Pred:
        left = term()
        while peek() == ("w", "or"):
            take()
            right, prev = term(), left
            left = (lambda a, b: lambda f: a(f) or b(f))(prev, right)
        return left

    def term() -> Pred:
        left = factor()
        while peek() == ("w", "and"):
            take()
            right, prev = factor(), left
            left = (lambda a, b: lambda f: a(f) and b(f))(prev, right)
        return left

    def factor() -> Pred:
        t = take()
        if t == ("w", "not"):
            inner = factor()
            return lambda f: not inner(f)
        if t == ("op", "("):
            inner = expr()
            if take() != ("op", ")"):
                raise BadQuery("missing )")
            return inner
        if t[0] == "s":  # 'value' in parents
            if take() != ("w", "in") or take() != ("w", "parents"):
                raise BadQuery("expected in parents")
            return lambda f, v=t[1]: v in f.parents
        if t[0] != "w" or t[1] not in _FIELDS:
            raise BadQuery(f"unknown field {t[1]}")
        fld, op, val = t[1], take(), take()
        if fld in ("name", "fullText") and op == ("w", "contains") and val[0] == "s":
            needle = val[1].lower()
            if fld == "name":
                return lambda f: needle in f.name.lower()
            return lambda f: needle in f.name.lower() or needle in f.text().lower() or needle in f.description.lower()
        if fld == "mimeType" and op[1] in ("=", "!=") and val[0] == "s":
            return (lambda f: f.mime == val[1]) if op[1] == "=" else (lambda f: f.mime != val[1])
        if fld == "modifiedTime" and op[0] == "op" and op[1] in ("<", "<=", ">", ">=", "=") and val[0] == "s":
            try:
                when = datetime.fromisoformat(val[1].replace("Z", "+00:00"))
            except ValueError:
                raise BadQuery("bad time") from None
            cmp = {"<": lambda x: x < when, "<=": lambda x: x <= when, ">": lambda x: x > when,
                   ">=": lambda x: x >= when, "=": lambda x: x == when}[op[1]]
            return lambda f: cmp(f.modified)
        if fld in ("trashed", "starred", "sharedWithMe") and op == ("op", "=") and val[1] in ("true", "false"):
            want = val[1] == "true"
            if fld == "sharedWithMe":  # what the service account sees outside shared drives was shared with it
                return lambda f: (not f.drive) == want
            return lambda f: want is False  # nothing in the sandbox is trashed or starred
        raise BadQuery(f"bad comparison on {fld}")

    pred = expr()
    if i != len(toks):
        raise BadQuery("trailing tokens")
    return pred


# --- field masks ---------------------------------------------------------------------------------------
def parse_fields(spec: str) -> dict[str, Any]:
    """'a,b(c,d)' -> {'a': {}, 'b': {'c': {}, 'd': {}}}; '*' keeps everything."""
    out: dict[str, Any] = {}
    stack, name = [out], ""
    for ch in spec + ",":
        if ch in ",()":
            if name.strip():
                stack[-1][name.strip()] = stack[-1].get(name.strip(), {})
            if ch == "(":
                stack.append(stack[-1][name.strip()])
            elif ch == ")":
                stack.pop()
            name = ""
        else:
            name += ch
    return out


def apply_fields(obj: Any, mask: dict[str, Any]) -> Any:
    if not mask or "*" in mask:
        return obj
    if isinstance(obj, list):
        return [apply_fields(x, mask) for x in obj]
    if not isinstance(obj, dict):
        return obj
    return {k: apply_fields(obj[k], sub) for k, sub in mask.items() if k in obj}


def _error(code: int, message: str, reason: str, location: str | None = None) -> JSONResponse:
    err: dict[str, Any] = {"domain": "global", "reason": reason, "message": message}
    if location:
        err.update({"location": location, "locationType": "parameter"})
    status = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
    return JSONResponse({"error": {"code": code, "message": message, "errors": [err],
                                   "status": status.get(code, "UNKNOWN")}}, code)


@dataclass
class DriveState:
    world: World
    files: dict[str, FakeFile]
    tokens: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def build_app(world: World, faults: Faults | None = None) -> Starlette:
    faults = faults or Faults()
    state = DriveState(world, seed(world))

    def resource(f: FakeFile) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "drive#file", "id": f.id, "name": f.name, "mimeType": f.mime, "parents": list(f.parents),
            "modifiedTime": f.modified.isoformat().replace("+00:00", "Z"),
            "createdTime": (f.modified - timedelta(days=40)).isoformat().replace("+00:00", "Z"),
            "lastModifyingUser": {"kind": "drive#user", "displayName": PEOPLE[f.by],
                                  "emailAddress": f"{f.by}@acme.example"},
            "trashed": False, "version": str(int(f.modified.timestamp()) % 100000),
            "webViewLink": f"https://drive.google.com/file/d/{f.id}/view",
        }
        if f.mime == DOC:
            out["webViewLink"] = f"https://docs.google.com/document/d/{f.id}/edit"
        if f.drive:
            out["driveId"] = f.drive
        else:
            out["owners"] = [{"kind": "drive#user", "displayName": PEOPLE[f.owner or f.by],
                              "emailAddress": f"{f.owner or f.by}@acme.example"}]
        if f.description:
            out["description"] = f.description
        if f.target:
            target = state.files[f.target]
            out["shortcutDetails"] = {"targetId": target.id, "targetMimeType": target.mime}
        if f.mime in (PDF, "text/plain"):
            out["size"] = str(len(body_of(f)))
        return out

    def body_of(f: FakeFile) -> bytes:
        v = f.content() if f.content else b""
        return v if isinstance(v, bytes) else str(v).encode()

    def authed(request: Request) -> Response | None:
        if (bad := faults.take()) is not None:
            return bad
        token = bearer(request)
        with state.lock:
            expiry = state.tokens.get(token or "")
        if expiry is None or expiry < time.time():
            return _error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                          "authError", "Authorization")
        return None

    def visible(f: FakeFile, request: Request) -> bool:
        # Shared-drive items exist for a caller only when it says it supports shared drives.
        return not f.drive or request.query_params.get("supportsAllDrives") == "true"

    async def token(request: Request) -> Response:
        form = await request.form()
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            from google.auth import jwt

            try:
                claims = jwt.decode(str(form.get("assertion") or ""), certs={SA_KEY_ID: _keypair()[1]},
                                    verify=True, audience=None)
            except ValueError as e:
                return JSONResponse({"error": "invalid_grant", "error_description": f"Invalid JWT: {e}"}, 400)
            if claims.get("iss") != SA_EMAIL or not str(claims.get("aud", "")).endswith("/token"):
                return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT claims"}, 400)
            if SCOPE_RO not in str(claims.get("scope", "")).split():
                return JSONResponse({"error": "invalid_scope", "error_description": "drive.readonly required"}, 400)
        elif grant == "refresh_token":
            if (form.get("client_id"), form.get("client_secret"), form.get("refresh_token")) != (
                    OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAUTH_REFRESH_TOKEN):
                return JSONResponse({"error": "invalid_grant", "error_description": "Bad Request"}, 400)
        else:
            return JSONResponse({"error": "unsupported_grant_type", "error_description": str(grant)}, 400)
        access = "ya29.sandbox-" + secrets.token_urlsafe(24)
        with state.lock:
            state.tokens[access] = time.time() + 3600
        return JSONResponse({"access_token": access, "expires_in": 3599, "token_type": "Bearer", "scope": SCOPE_RO})

    def bool_param(request: Request, name: str) -> bool | None:
        v = request.query_params.get(name)
        if v is None:
            return False
        if v not in ("true", "false"):
            return None
        return v == "true"

    async def files_list(request: Request) -> Response:
        if (bad := authed(request)) is not None:
            return bad
        qp = request.query_params
        flags = {n: bool_param(request, n) for n in ("includeItemsFromAllDrives", "supportsAllDrives")}
        if None in flags.values():
            return _error(400, "Invalid boolean value", "invalidParameter")
        corpora = qp.get("corpora", "user")
        if corpora not in ("user", "drive", "domain", "allDrives"):
            return _error(400, f"Invalid value for corpora: {corpora}", "invalidParameter", "corpora")
        if corpora in ("allDrives", "drive") and not flags["includeItemsFromAllDrives"]:
            return _error(403, "The includeItemsFromAllDrives parameter must be set to true when corpora is set "
                          "to allDrives or drive.", "teamDriveInclusionRequired", "includeItemsFromAllDrives")
        if corpora == "drive" and not qp.get("driveId"):
            return _error(400, "The driveId parameter must be specified if and only if corpora is set to drive.",
                          "invalidParameter", "driveId")
        try:
            pred = parse_q(qp.get("q") or "trashed = false")
        except BadQuery:
            return _error(400, "Invalid Value", "invalid", "q")
        try:
            size = int(qp.get("pageSize") or 100)
        except ValueError:
            return _error(400, "Invalid value for pageSize", "invalidParameter", "pageSize")
        if not 1 <= size <= 1000:
            return _error(400, f"Invalid value '{size}'. Values must be within the range: [1, 1000]", "invalid",
                          "pageSize")
        offset = page_offset(qp.get("pageToken"))
        if offset < 0:
            return _error(400, "Invalid Value", "invalid", "pageToken")
        items = [f for f in state.files.values()
                 if (not f.drive or (flags["includeItemsFromAllDrives"] and flags["supportsAllDrives"]))
                 and (corpora != "drive" or f.drive == qp.get("driveId")) and pred(f)]
        order = qp.get("orderBy", "")
        if order.startswith("modifiedTime"):
            items.sort(key=lambda f: f.modified, reverse=order.endswith("desc"))
        elif order.startswith("name"):
            items.sort(key=lambda f: f.name.lower(), reverse=order.endswith("desc"))
        chunk = items[offset: offset + size]
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False,
                                "files": [resource(f) for f in chunk]}
        if offset + size < len(items):
            body["nextPageToken"] = page_cursor(offset + size)
        mask = parse_fields(qp.get("fields") or "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)")
        return JSONResponse(apply_fields(body, mask))

    def lookup(request: Request, *, export: bool = False) -> FakeFile | Response:
        fid = request.path_params["fileId"]
        f = state.files.get(fid)
        if export and f is not None:  # files.export takes no supportsAllDrives flag
            return f
        if fid == DRIVE_ID and request.query_params.get("supportsAllDrives") == "true":
            return FakeFile(DRIVE_ID, "Drive", FOLDER, [], world.anchor - timedelta(days=400), "alice")
        if f is None or not visible(f, request):
            return _error(404, f"File not found: {fid}.", "notFound", "fileId")
        return f

    async def files_get(request: Request) -> Response:
        if (bad := authed(request)) is not None:
            return bad
        f = lookup(request)
        if isinstance(f, Response):
            return f
        if request.query_params.get("alt") == "media":
            if f.mime.startswith("application/vnd.google-apps."):
                return _error(403, "Only files with binary content can be downloaded. Use Export with Docs Editors "
                              "files.", "fileNotDownloadable", "alt")
            return Response(body_of(f), media_type=f.mime)
        res = resource(f) if f.id != DRIVE_ID else {"kind": "drive#file", "id": DRIVE_ID, "name": "Drive",
                                                     "mimeType": FOLDER, "driveId": DRIVE_ID}
        return JSONResponse(apply_fields(res, parse_fields(request.query_params.get("fields")
                                                           or "kind,id,name,mimeType")))

    async def files_export(request: Request) -> Response:
        if (bad := authed(request)) is not None:
            return bad
        f = lookup(request, export=True)
        if isinstance(f, Response):
            return f
        mime = request.query_params.get("mimeType")
        if not mime:
            return _error(400, "Required parameter: mimeType", "required", "mimeType")
        if not f.mime.startswith("application/vnd.google-apps."):
            return _error(403, "Export only supports Docs Editors files.", "fileNotExportable")
        v = f.content() if f.content else ""
        if f.mime == DOC and mime in ("text/markdown", "text/plain"):
            text = str(v) if mime == "text/markdown" else re.sub(r"[#*`|]", "", str(v))
            return Response(text.encode(), media_type=mime)
        if f.mime == SHEET and mime == XLSX:
            return Response(build_xlsx(v), media_type=XLSX)
        if f.mime == SHEET and mime == "text/csv":
            rows = v[0][1]
            return Response("\n".join(",".join(str(c[1] if isinstance(c, tuple) else c) for c in r)
                                      for r in rows).encode(), media_type=mime)
        if f.mime == SLIDES and mime == "text/plain":
            return Response(str(v).encode(), media_type=mime)
        return _error(400, "The requested conversion is not supported.", "badRequest", "mimeType")

    async def drives_get(request: Request) -> Response:
        if (bad := authed(request)) is not None:
            return bad
        if request.path_params["driveId"] != DRIVE_ID:
            return _error(404, f"Shared drive not found: {request.path_params['driveId']}", "notFound", "driveId")
        body = {"kind": "drive#drive", "id": DRIVE_ID, "name": DRIVE_NAME,
                "createdTime": (world.anchor - timedelta(days=400)).isoformat().replace("+00:00", "Z")}
        return JSONResponse(apply_fields(body, parse_fields(request.query_params.get("fields") or "")))

    return Starlette(routes=[
        Route("/token", token, methods=["POST"]),
        Route("/drive/v3/files", files_list, methods=["GET"]),
        Route("/drive/v3/files/{fileId}", files_get, methods=["GET"]),
        Route("/drive/v3/files/{fileId}/export", files_export, methods=["GET"]),
        Route("/drive/v3/drives/{driveId}", drives_get, methods=["GET"]),
    ])


def sandbox_env(base_url: str) -> dict[str, str]:
    """Points the Drive client at this fake, with an inline service-account key whose token_uri is the fake's."""
    return {"SPYGLASS_DRIVE_URL": base_url,
            "SPYGLASS_DRIVE_CREDENTIALS_JSON": json.dumps(service_account_info(f"{base_url}/token"))}
