"""Files rendered from code and committed (deploy/prometheus/, deploy/grafana/): write
them, or say which committed ones differ from what the code renders now."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def stale(rendered: dict[Path, str]) -> list[Path]:
    """The files whose committed text is not `rendered`'s (missing ones included)."""
    return [path for path, text in rendered.items() if not path.is_file() or path.read_text() != text]


def write(rendered: dict[Path, str]) -> list[Path]:
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(rendered)


def main(argv: list[str] | None, description: str, module: str, rendered: Callable[[], dict[Path, str]]) -> int:
    """`python -m <module> [--check]`: write the files, or exit 1 naming the stale ones."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed file is stale")
    args = parser.parse_args(argv)
    files = rendered()
    if args.check:
        drifted = stale(files)
        for path in drifted:
            print(f"stale: {path.relative_to(PROJECT_ROOT)} (run python -m {module})")
        return 1 if drifted else 0
    for path in write(files):
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0
