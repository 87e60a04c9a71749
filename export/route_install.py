"""The one installer of Python models: copies a route's manifest, and its data files,
into its version folder; `model.py` goes last, with the export stamp."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from export import artifacts
from marquee.routes.manifest import SURFACES_FILE, RouteManifest
from marquee.surfaces import PROJECT_SURFACES

DataFile = Path | str | bytes
log = logging.getLogger(__name__)


def install_route(
    manifest: RouteManifest,
    version_dir: Path,
    stamp: dict,
    data: dict[str, DataFile] | None = None,
    operator_owned: dict[str, str] | None = None,
) -> Path:
    """Install modules and data first and `model.py` last, so that a crash half-way
    leaves no stamp and the next export redoes it. `data` maps a file name in the version
    folder to a source file (Path), text (str) or bytes.

    `operator_owned` maps a data file to the history file an operator command keeps next
    to it (`marquee moderation policy` keeps policy.history.jsonl): once that history
    exists, the file is the operator's and a re-export leaves it as it is, so a promoted
    policy is not silently replaced by the project's default."""
    version_dir = Path(version_dir)
    version_dir.mkdir(parents=True, exist_ok=True)
    data = dict(data or {})
    modules = manifest.module_files()
    for old in version_dir.glob("*.py"):
        # A module an earlier manifest installed (since moved or removed): the route must
        # not keep importing a stale copy of it.
        if old.name != "model.py" and old.name not in modules and old.name not in data:
            log.info("%s: removing %s (no longer in the route's manifest)", version_dir, old.name)
            old.unlink()
    for name, source in modules.items():
        shutil.copy2(source, version_dir / name)
    if manifest.uses_surfaces:
        data.setdefault(SURFACES_FILE, PROJECT_SURFACES)
    for name, history in (operator_owned or {}).items():
        if name in data and (version_dir / history).is_file():
            log.info("%s: keeping %s (operators change it; see %s)", version_dir, name, version_dir / history)
            del data[name]
    for name, content in data.items():
        target = version_dir / name
        if isinstance(content, Path):
            _link_or_copy(content, target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.py"
        shutil.copy2(manifest.model_file(), staged)
        return artifacts.install(staged, version_dir, "model.py", stamp)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the filesystem allows one (a route's copy of a large model file
    then costs no disk), else a copy. Either way the folder holds the file itself, so it
    can move to object storage or another volume on its own."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
