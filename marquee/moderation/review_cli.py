"""`marquee moderation review`: label the items decided "review", in the terminal or on a
local web page; every label is audited; labelled items export for calibrate and train."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from marquee.console import console

SHORTCUTS = {"c": "clean", "i": "insult", "t": "threat", "x": "sexual", "s": "spam"}


def _answer(raw: str) -> str | None:
    """A label from a typed answer (a shortcut or the full name), "skip", "quit" or None."""
    raw = raw.strip().lower()
    if raw in ("q", "quit"):
        return "quit"
    if raw in ("", "k", "skip"):
        return "skip"
    return SHORTCUTS.get(raw) or (raw if raw in SHORTCUTS.values() else None)


def label_interactively(review, reviewer: str, ask=input, limit: int = 1000) -> int:
    """Show each open item and record the reviewer's label; returns how many were labelled."""
    labelled = 0
    for item in review.open_items(limit):
        reasons = ", ".join(item.audit.get("reasons") or []) or "-"
        console.print(f"\n[bold]{item.text}[/]\n  model: {item.decision} ({reasons})")
        while True:
            answer = _answer(ask("  label [c]lean [i]nsult [t]hreat se[x]ual [s]pam, [k] skip, [q] quit: "))
            if answer is not None:
                break
            console.print("  [red]?[/] type c, i, t, x, s, k or q")
        if answer == "quit":
            break
        if answer == "skip":
            continue
        record = review.label(item.id, answer, reviewer, "terminal")
        console.print(f"  [green]✓[/] {record.label}: model {record.outcome}")
        labelled += 1
    return labelled


def review(
    store: Annotated[
        str | None, typer.Option(help="Moderation queue whose 'review' decisions join the review queue first.")
    ] = None,
    review_db: Annotated[Path | None, typer.Option("--review-db", help="Review queue file (SQLite).")] = None,
    reviewer: Annotated[str | None, typer.Option(help="Who is labelling (default: the login name).")] = None,
    web: Annotated[bool, typer.Option(help="Serve the local review web page instead of asking here.")] = False,
    address: Annotated[
        str, typer.Option(help="Address the web page binds (default: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the web page.")] = 8090,
    export: Annotated[
        Path | None, typer.Option(help="Write every labelled item as a TSV for calibrate/train, then stop.")
    ] = None,
    audit: Annotated[bool, typer.Option(help="Print the reviewers' audit log, then stop.")] = False,
) -> None:
    """Label items decided "review" (terminal, or --web); --export them for calibrate/train."""
    import json

    from marquee.moderation.review import ReviewQueue, default_review_path, import_reviews

    with ReviewQueue(review_db or default_review_path()) as queue:
        if store is not None:
            from marquee.moderation.cli import _open

            source = _open(store)
            try:
                console.print(f"{import_reviews(queue, source)} new items from {store}")
            finally:
                source.close()
        if export is not None:
            queue.export_labels(export)
            console.print(f"[green]✓[/] {queue.counts()['labelled']} labelled items -> {export}")
            return
        if audit:
            for record in queue.audit_log():
                console.print_json(json.dumps(record.as_dict()))
            return
        if web:
            return _serve(queue, address, port)
        count = label_interactively(queue, reviewer or getpass.getuser())
        console.print(f"[green]✓[/] {count} labelled; {queue.counts()['open']} still open")


def _serve(queue, address: str, port: int) -> None:
    from marquee.moderation.review_web import ReviewServer
    from marquee.server.security import check_bind_address, is_loopback, resolve_admin_key

    bind = check_bind_address(address)
    if not is_loopback(bind):
        console.print(f"[yellow]![/] binding {bind}: the review page is reachable from other machines (no TLS)")
    key = resolve_admin_key(create=True)
    server = ReviewServer((bind, port), queue, key.value)
    console.print(f"review page: {server.url}/ (sign in with the admin key; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
