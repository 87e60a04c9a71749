"""Moderation policy versions: a shadow candidate, promote, rollback, and their diff.

A deployed moderation route keeps three files in its version folder, all re-read while
it serves (no reload):
- `policy.yaml`: the policy in force; every decision's audit names its version and sha256;
- `policy_shadow.yaml`: a candidate, decided on the same scores and recorded in the audit
  (`audit["shadow"]`, `enforced: false`), never enforced;
- `policy_previous.yaml`: what `promote` replaced, so `rollback` can restore it.

`diff` re-decides recorded scores with both policies: on recent audit records (what
production saw) or on a labelled file scored by a running route. The candidate's
ambiguous band is not replayed: scores come from the cascade as the policy in force ran it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from marquee.errors import MarqueeError
from marquee.moderation.policy import DECISIONS, ERROR, Policy, decide, load_policy, most_severe

ACTIVE, SHADOW, PREVIOUS = "policy.yaml", "policy_shadow.yaml", "policy_previous.yaml"
HISTORY = "policy.history.jsonl"


class PolicyRolloutError(MarqueeError, ValueError):
    """A policy command cannot proceed; the message says what to fix."""


@dataclass(frozen=True)
class PolicyFiles:
    repository: Path
    route: str = "moderate_text"
    version: int = 1

    @property
    def folder(self) -> Path:
        folder = self.repository / self.route / str(self.version)
        if not (folder / ACTIVE).is_file():
            raise PolicyRolloutError(f"--route {self.route}: no {folder / ACTIVE}; is the route exported there?")
        return folder

    def path(self, name: str) -> Path:
        return self.folder / name

    def load(self, name: str) -> Policy | None:
        path = self.path(name)
        return load_policy(path) if path.is_file() else None

    def _log(self, action: str, detail: dict) -> None:
        entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "action": action, **detail}
        with self.path(HISTORY).open("a") as f:
            f.write(json.dumps(entry) + "\n")


def _install(source: Path, target: Path) -> None:
    """Copied to a temporary file and renamed: a route never reads half a policy."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def set_shadow(files: PolicyFiles, candidate: Path) -> Policy:
    policy = load_policy(candidate)  # refuse a malformed candidate before installing it
    _install(candidate, files.path(SHADOW))
    files._log("shadow", {"version": policy.version, "sha256": policy.sha256})
    return policy


def clear_shadow(files: PolicyFiles) -> None:
    files.path(SHADOW).unlink(missing_ok=True)
    files._log("clear-shadow", {})


def promote(files: PolicyFiles) -> Policy:
    """The shadow becomes the policy in force; the replaced one is kept for rollback."""
    candidate = files.load(SHADOW)
    if candidate is None:
        raise PolicyRolloutError(
            f"{files.path(SHADOW)}: no shadow policy to promote; `marquee moderation policy shadow FILE`"
        )
    _install(files.path(ACTIVE), files.path(PREVIOUS))
    _install(files.path(SHADOW), files.path(ACTIVE))
    files.path(SHADOW).unlink()
    files._log("promote", {"version": candidate.version, "sha256": candidate.sha256})
    return candidate


def rollback(files: PolicyFiles) -> Policy:
    """The previous policy is in force again; the one it replaces becomes `previous` (a
    second rollback undoes the first)."""
    previous = files.load(PREVIOUS)
    if previous is None:
        raise PolicyRolloutError(f"{files.path(PREVIOUS)}: no previous policy to roll back to")
    staged = files.path(f".{PREVIOUS}.swap")
    shutil.copyfile(files.path(ACTIVE), staged)
    _install(files.path(PREVIOUS), files.path(ACTIVE))
    os.replace(staged, files.path(PREVIOUS))
    files._log("rollback", {"version": previous.version, "sha256": previous.sha256})
    return previous


# -- diff ----------------------------------------------------------------------------------


def audit_decision(audit: dict, policy: Policy) -> str:
    """What `policy` decides on an audit's recorded scores. An image audit (moderate_image)
    is judged on its label scores, then combined with the verdict its OCR text got from the
    text route; a text audit on its category scores."""
    if "image" in audit:
        image = decide(audit["scores"], policy.image.labels).decision
        return most_severe([image, audit.get("ocr", {}).get("text_decision", "allow")])
    return decide(audit["scores"], policy.text.categories).decision


def policy_diff(audits: list[dict], active: Policy, candidate: Policy, labels: list[str] | None = None) -> dict:
    """How decisions change from `active` to `candidate` on recorded scores.

    `labels` (one per audit: allow / review / block) adds each policy's agreement with
    them. Audits of items that could not be judged (decision "error") are skipped."""
    if labels is not None and len(labels) != len(audits):
        raise PolicyRolloutError(f"{len(labels)} labels for {len(audits)} audit records; must be one each")
    transitions: Counter = Counter()
    changed, agree = [], {"active": 0, "candidate": 0}
    judged = 0
    for index, audit in enumerate(audits):
        if audit.get("decision") == ERROR or not isinstance(audit.get("scores"), dict):
            continue
        judged += 1
        before, after = audit_decision(audit, active), audit_decision(audit, candidate)
        transitions[f"{before}->{after}"] += 1
        if before != after and len(changed) < 20:
            changed.append({"index": index, "from": before, "to": after, "scores": audit["scores"]})
        if labels is not None:
            agree["active"] += before == labels[index]
            agree["candidate"] += after == labels[index]
    report = {
        "active": {"version": active.version, "sha256": active.sha256},
        "candidate": {"version": candidate.version, "sha256": candidate.sha256},
        "judged": judged,
        "skipped": len(audits) - judged,
        "changed": sum(n for key, n in transitions.items() if key.split("->")[0] != key.split("->")[1]),
        "transitions": dict(sorted(transitions.items())),
        "examples": changed,
    }
    if labels is not None and judged:
        report["label_agreement"] = {name: count / judged for name, count in agree.items()}
    return report


def _json_lines(path: Path):
    """(line number, parsed object, raw line) for each non-blank line of a JSONL file."""
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), line
        except json.JSONDecodeError as error:
            raise PolicyRolloutError(f"{path}:{number}: not JSON ({error})") from None


def read_labelled(path: Path) -> tuple[list[str], list[str]]:
    """A labelled file: one JSON object per line with `text` and `label` (allow/review/block)."""
    texts, labels = [], []
    for number, row, line in _json_lines(path):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("label") not in DECISIONS:
            raise PolicyRolloutError(
                f'{path}:{number}: expected {{"text": str, "label": one of {", ".join(DECISIONS)}}}; got {line[:120]!r}'
            )
        texts.append(row["text"])
        labels.append(row["label"])
    return texts, labels


def read_audits(path: Path) -> list[dict]:
    """Audit records, one JSON object per line: the audit itself, or a stored decision
    record that holds it under `audit` (as the moderation queue keeps them)."""
    audits = []
    for number, row, _ in _json_lines(path):
        audit = row.get("audit", row) if isinstance(row, dict) else None
        if isinstance(audit, str):
            audit = json.loads(audit)
        if not isinstance(audit, dict):
            raise PolicyRolloutError(f"{path}:{number}: expected an audit record (a JSON object)")
        audits.append(audit)
    return audits
