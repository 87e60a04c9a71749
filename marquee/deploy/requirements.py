"""The deploy/ requirement files, read back and checked against the code that needs them.

- requirements-routes.txt: what the installed route files import at serving time (the
  files `marquee/routes/manifest.py` installs), for the NGC image;
- requirements-python-backends.txt: that plus what the embedded server's Python-based
  backends import;
- requirements-worker.txt: what `marquee moderation worker` imports.
Every pin must satisfy pyproject.toml, so the image never runs a version the tests did
not allow.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from marquee.routes.manifest import MANIFESTS, PACKAGE_ROOT

PROJECT_ROOT = PACKAGE_ROOT.parent
DEPLOY_DIR = PROJECT_ROOT / "deploy"
ROUTES_FILE = DEPLOY_DIR / "requirements-routes.txt"
BACKENDS_FILE = DEPLOY_DIR / "requirements-python-backends.txt"
WORKER_FILE = DEPLOY_DIR / "requirements-worker.txt"
BACKEND_MODELS = tuple(sorted((PACKAGE_ROOT / "backends").glob("*/model.py")))
# Provided by Triton's Python backend, not by pip.
TRITON_PROVIDED = {"triton_python_backend_utils"}
# Import name -> distribution, where they differ.
DISTRIBUTION_OF = {
    "cv2": "opencv-python-headless",
    "yaml": "pyyaml",
    "faiss": "faiss-cpu",
    "nvidia": "nvidia-dali-cuda120",
}


@dataclass(frozen=True)
class Pin:
    name: str  # canonical distribution name
    version: str
    line: str


def read_pins(path: Path) -> dict[str, Pin]:
    """`name==version` lines of a requirements file, following `-r other.txt`."""
    pins: dict[str, Pin] = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            pins.update(read_pins(path.parent / line[3:].strip()))
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise ValueError(f"{path.name}: `{line}` must pin one exact version (name==version)")
        name = canonicalize_name(requirement.name)
        pins[name] = Pin(name, specifiers[0].version, line)
    return pins


def installed_route_files() -> list[Path]:
    files = set()
    for manifest in MANIFESTS.values():
        files.add(manifest.model_file())
        files.update(manifest.module_files().values())
    return sorted(files)


def installed_module_names() -> set[str]:
    """Modules that sit side by side in some route's version folder."""
    names = set()
    for manifest in MANIFESTS.values():
        names.update(Path(name).stem for name in manifest.module_files())
    return names


def _is_import_fallback(handler: ast.ExceptHandler) -> bool:
    names = {ast.unparse(handler.type)} if handler.type is not None else set()
    return bool(names & {"ImportError", "ModuleNotFoundError", "(ImportError, ModuleNotFoundError)"})


def _fallback_imports(tree: ast.AST) -> set[int]:
    """ids of import nodes in `except ImportError:` branches: the package-relative twin
    of a sibling import, used when tests import the module from the marquee package."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                if _is_import_fallback(handler):
                    skipped.update(id(inner) for inner in ast.walk(handler))
    return skipped


def imported_roots(path: Path) -> set[str]:
    """Top-level modules a file imports, anywhere in it (lazy imports included),
    except the fallbacks of `try: import sibling / except ImportError:`."""
    tree = ast.parse(path.read_text())
    skipped = _fallback_imports(tree)
    roots = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def third_party(roots: set[str], local: set[str]) -> set[str]:
    return {root for root in roots if root not in sys.stdlib_module_names and root not in local | TRITON_PROVIDED}


def distributions(imports: set[str]) -> set[str]:
    return {canonicalize_name(DISTRIBUTION_OF.get(name, name)) for name in imports}


def route_distributions() -> dict[str, set[str]]:
    """Distribution -> the installed route files that import it."""
    local = installed_module_names()
    needed: dict[str, set[str]] = {}
    for path in installed_route_files():
        for dist in distributions(third_party(imported_roots(path), local)):
            needed.setdefault(dist, set()).add(str(path.relative_to(PROJECT_ROOT)))
    return needed


def backend_distributions() -> set[str]:
    """What each Python-based backend's files import; its helper modules travel with its
    model.py (marquee/server/embedded.py copies the folder's .py files), so they are local."""
    needed = set()
    for model in BACKEND_MODELS:
        files = sorted(model.parent.glob("*.py"))
        local = {path.stem for path in files}
        for path in files:
            needed |= distributions(third_party(imported_roots(path), local))
    return needed


def pyproject_requirements() -> dict[str, Requirement]:
    """Every requirement pyproject.toml states, core and extras (self-references such as
    `marquee[cli]` skipped): a pin must satisfy each layer that names its distribution."""
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    lines = [
        *project["dependencies"],
        *(line for extra in project.get("optional-dependencies", {}).values() for line in extra),
    ]
    requirements = [Requirement(line) for line in lines]
    merged: dict[str, Requirement] = {}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name == canonicalize_name(project["name"]):
            continue
        if name in merged:  # named in two layers: both specifiers must hold
            requirement = Requirement(f"{name}{merged[name].specifier & requirement.specifier}")
        merged[name] = requirement
    return merged


def pins_outside_pyproject(pins: dict[str, Pin]) -> list[str]:
    """Pins whose version pyproject.toml does not allow (distributions it does not name pass)."""
    allowed = pyproject_requirements()
    return [
        f"{pin.line} (pyproject: {allowed[name]})"
        for name, pin in sorted(pins.items())
        if name in allowed and not allowed[name].specifier.contains(pin.version, prereleases=True)
    ]


# Standard-library names added after Python 3.10: a route using one fails in the NGC
# 24.10 image (Python 3.10) though it passes here (3.11).
PY311_ONLY = re.compile(
    r"\b(StrEnum|tomllib|ExceptionGroup|TaskGroup|asyncio\.timeout|datetime\.UTC|typing\.Self|LiteralString)\b"
)


def python310_problems(path: Path) -> list[str]:
    source = path.read_text()
    problems = []
    try:
        ast.parse(source, feature_version=(3, 10))
    except SyntaxError as error:
        problems.append(f"{path.name}:{error.lineno}: not Python 3.10 syntax ({error.msg})")
    for number, line in enumerate(source.splitlines(), start=1):
        match = PY311_ONLY.search(line)
        if match and not line.lstrip().startswith("#"):
            problems.append(f"{path.name}:{number}: `{match.group(1)}` needs Python 3.11")
    return problems
