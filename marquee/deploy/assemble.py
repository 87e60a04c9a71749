"""Lay out a complete model repository for one deployment target: that target's rendered
`config.pbtxt` files plus the exported version folders from the embedded repository.

`marquee export ...` writes artifacts once, into `model_repository/`; the targets differ
only in configs (marquee/targets.py). Assembling copies (or hard-links) each model's
version folders next to its target config, then runs the structural check with the files
present, so a config that loads a file the export did not write (a GPU target's QDQ
model, say) fails here, not in the container:

    marquee deploy assemble --target ngc-gpu --out build/ngc-gpu
    docker build -f deploy/Dockerfile --build-arg MODEL_REPOSITORY=build/ngc-gpu ...
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from marquee import render
from marquee.deploy.errors import DeployError
from marquee.repository_check import check_repository
from marquee.specs.base import ModelSpec
from marquee.targets import Target


def assemble_repository(specs: list[ModelSpec], target: Target, source: Path, out: Path) -> Path:
    """Write `out` as `target`'s repository with `source`'s exported versions; raises
    DeployError listing every model not exported and every structural problem."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DeployError(f"--out {out}: exists and is not empty; choose a new folder")
    missing = [spec.name for spec in specs if not _versions(Path(source) / spec.name)]
    if missing:
        raise DeployError(
            f"not exported in {source}: {', '.join(missing)}; run `marquee up --no-wait` or `marquee export ...` first"
        )
    render.write(specs, out, target)
    for spec in specs:
        for version in _versions(Path(source) / spec.name):
            _link_tree(version, out / spec.name / version.name, skip=set(spec.offline_files))
    problems = check_repository(specs, out, target)
    if problems:
        raise DeployError(f"{target.name} repository at {out} would not load:\n" + "\n".join(problems))
    return out


def _versions(model_dir: Path) -> list[Path]:
    if not model_dir.is_dir():
        return []
    return sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _link_tree(source: Path, target: Path, skip: set[str]) -> None:
    """Hard links where possible (an assembled repository then costs no disk), else
    copies; names in `skip` (the spec's offline files) stay behind."""
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in skip:
            continue
        if item.is_dir():
            _link_tree(item, target / item.name, skip)
            continue
        try:
            os.link(item, target / item.name)
        except OSError:
            shutil.copy2(item, target / item.name)
