"""Content-addressed export stamps, so `marquee export` skips work whose inputs are unchanged."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

STAMP = "marquee-export.json"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(*parts: str | bytes | Path) -> str:
    """Hash of strings, bytes and file contents, in order."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            part = file_digest(part)
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def toolchain_fingerprint() -> str:
    """Versions whose change can change an exported graph."""
    return ",".join(f"{pkg}={metadata.version(pkg)}" for pkg in ("torch", "onnx", "onnxruntime", "onnxscript"))


def read_stamp(version_dir: Path) -> dict | None:
    path = version_dir / STAMP
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_current(version_dir: Path, input_hash: str, artifact: str) -> bool:
    stamp = read_stamp(version_dir)
    return bool(
        stamp
        and stamp.get("input_hash") == input_hash
        and (version_dir / artifact).is_file()
        and stamp.get("artifact_sha256") == file_digest(version_dir / artifact)
    )


def install(staged_artifact: Path, version_dir: Path, artifact: str, stamp: dict) -> Path:
    """Move a validated artifact into the repository, then write its stamp (last, so a crash
    in between leaves no stamp and the next run redoes the export)."""
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / STAMP).unlink(missing_ok=True)
    target = version_dir / artifact
    shutil.move(str(staged_artifact), target)
    stamp = {**stamp, "artifact_sha256": file_digest(target), "exported_at": datetime.now(UTC).isoformat()}
    (version_dir / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return target
