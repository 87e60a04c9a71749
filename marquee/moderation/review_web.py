"""A small local web page for the review queue.

Protected like the other admin surfaces: it binds 127.0.0.1 unless told otherwise, and
every request needs the admin key (the same one Triton's restricted APIs take:
$MARQUEE_ADMIN_KEY or .marquee/admin.key). A browser signs in once on /login with the
key and a reviewer name; the key then travels in an HttpOnly, SameSite=Strict cookie,
so another site cannot submit labels in the reviewer's name. Scripts may send the
`marquee-admin-key` header instead (with `marquee-reviewer`).

Pages: `/` (open items, one form per item with a button per label), `POST /label`,
`/audit.json` (every reviewer decision), `/login`. Standard library only.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import threading
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote

from marquee.moderation.review import REVIEW_LABELS, ReviewError, ReviewQueue
from marquee.server.security import ADMIN_KEY_HEADER

log = logging.getLogger(__name__)
KEY_COOKIE, REVIEWER_COOKIE = "marquee_review_key", "marquee_reviewer"
REVIEWER_HEADER = "marquee-reviewer"
MAX_FORM_BYTES = 16 * 1024

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
.item{{border:1px solid #ccc;padding:1em;margin:1em 0}}
.text{{font-size:1.2em}} .why{{color:#555}} button{{margin-right:.4em}}</style></head><body>{body}</body></html>"""


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.info("%s %s", self.address_string(), format % args)

    # -- auth --------------------------------------------------------------------------

    def _cookies(self) -> SimpleCookie:
        return SimpleCookie(self.headers.get("Cookie", ""))

    def _presented_key(self) -> str | None:
        morsel = self._cookies().get(KEY_COOKIE)
        return self.headers.get(ADMIN_KEY_HEADER) or (unquote(morsel.value) if morsel else None)

    def _authorised(self) -> bool:
        presented = self._presented_key()
        return presented is not None and hmac.compare_digest(presented.encode(), self.server.admin_key.encode())

    def _reviewer(self) -> str:
        morsel = self._cookies().get(REVIEWER_COOKIE)
        return self.headers.get(REVIEWER_HEADER) or (unquote(morsel.value) if morsel else "")

    def _same_origin(self) -> bool:
        """A browser's POST must come from this page (the cookie is SameSite=Strict too)."""
        origin = self.headers.get("Origin")
        return origin is None or origin == f"http://{self.headers.get('Host', '')}"

    # -- responses ---------------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: str, content_type: str = "text/html; charset=utf-8", headers=()):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str, headers=()) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            raise ReviewError(f"form of {length} bytes; allowed: up to {MAX_FORM_BYTES}")
        fields = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        return {name: values[0] for name, values in fields.items()}

    # -- routes ------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/login":
            return self._send(HTTPStatus.OK, self._login_page())
        if not self._authorised():
            return self._redirect("/login")
        if path == "/":
            return self._send(HTTPStatus.OK, self._queue_page())
        if path == "/audit.json":
            records = [r.as_dict() for r in self.server.queue.audit_log()]
            return self._send(HTTPStatus.OK, json.dumps(records, indent=1), "application/json")
        self._send(HTTPStatus.NOT_FOUND, PAGE.format(title="not found", body="<p>Not found</p>"))

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if not self._same_origin():
            return self._send(HTTPStatus.FORBIDDEN, PAGE.format(title="refused", body="<p>Cross-origin request</p>"))
        try:
            form = self._form()
        except ReviewError as error:
            return self._send(HTTPStatus.BAD_REQUEST, PAGE.format(title="bad request", body=html.escape(str(error))))
        if path == "/login":
            return self._login(form)
        if not self._authorised():
            return self._send(HTTPStatus.FORBIDDEN, PAGE.format(title="refused", body="<p>Sign in first</p>"))
        if path == "/label":
            return self._label(form)
        self._send(HTTPStatus.NOT_FOUND, PAGE.format(title="not found", body="<p>Not found</p>"))

    def _login(self, form: dict[str, str]) -> None:
        key, reviewer = form.get("key", ""), form.get("reviewer", "").strip()
        if not hmac.compare_digest(key.encode(), self.server.admin_key.encode()) or not reviewer:
            return self._send(HTTPStatus.FORBIDDEN, self._login_page("Wrong key, or no reviewer name"))
        attributes = "Path=/; HttpOnly; SameSite=Strict"
        self._redirect(
            "/",
            [
                ("Set-Cookie", f"{KEY_COOKIE}={quote(key)}; {attributes}"),
                ("Set-Cookie", f"{REVIEWER_COOKIE}={quote(reviewer)}; {attributes}"),
            ],
        )

    def _label(self, form: dict[str, str]) -> None:
        try:
            record = self.server.queue.label(form.get("item_id", ""), form.get("label", ""), self._reviewer(), "web")
        except ReviewError as error:
            return self._send(HTTPStatus.BAD_REQUEST, PAGE.format(title="bad request", body=html.escape(str(error))))
        log.info("review %s: %s by %s (%s)", record.item_id, record.label, record.reviewer, record.outcome)
        self._redirect(f"/?done={quote(record.item_id)}")

    # -- pages -------------------------------------------------------------------------

    def _login_page(self, message: str = "") -> str:
        body = (
            "<h1>Moderation review: sign in</h1>"
            + (f'<p class="error">{html.escape(message)}</p>' if message else "")
            + '<form method="post" action="/login">'
            + '<label>Admin key <input type="password" name="key" id="key"></label> '
            '<label>Reviewer <input name="reviewer" id="reviewer"></label> <button id="sign-in">Sign in</button></form>'
        )
        return PAGE.format(title="sign in", body=body)

    def _queue_page(self) -> str:
        items = self.server.queue.open_items()
        counts = self.server.queue.counts()
        parts = [
            f"<h1>Moderation review</h1><p>Reviewer: <b id='who'>{html.escape(self._reviewer())}</b> · "
            f"<span id='counts'>{counts['open']} open, {counts['labelled']} labelled</span></p>"
        ]
        for item in items:
            buttons = "".join(
                f'<button name="label" value="{label}" class="label-{label}">{label}</button>'
                for label in REVIEW_LABELS
            )
            reasons = ", ".join(item.audit.get("reasons") or []) or "-"
            parts.append(
                f'<div class="item" data-id="{html.escape(item.id)}"><p class="text">{html.escape(item.text)}</p>'
                f'<p class="why">model: {html.escape(item.decision)} ({html.escape(reasons)}) · policy '
                f"{html.escape(str(item.audit.get('policy_version', '-')))}</p>"
                '<form method="post" action="/label">'
                f'<input type="hidden" name="item_id" value="{html.escape(item.id)}">'
                f"{buttons}</form></div>"
            )
        if not items:
            parts.append("<p id='empty'>Nothing to review.</p>")
        return PAGE.format(title="moderation review", body="".join(parts))


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], queue: ReviewQueue, admin_key: str):
        super().__init__(address, ReviewHandler)
        self.queue = queue
        self.admin_key = admin_key

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="review-web", daemon=True)
        thread.start()
        return thread
