"""No artifact the product loads at run time is unpickled: unpickling runs code, so a
tampered file in a model repository (or a queue payload) would run in the server.

Scans every module that runs at serving time (marquee/ and clients/; export/ converts
trusted upstream checkpoints offline and is allowed to) for the loaders that unpickle:
pickle/cPickle/dill/cloudpickle/joblib loads, torch.load, pandas.read_pickle, shelve,
marshal, yaml.load without a safe loader, and np.load without allow_pickle=False."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("marquee", "clients")
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNPICKLING_CALLS = {"torch.load", "pandas.read_pickle", "pd.read_pickle", "yaml.unsafe_load", "yaml.full_load"}


def runtime_files() -> list[Path]:
    return sorted(path for package in RUNTIME_PACKAGES for path in (ROOT / package).rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def unpickling_sites(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    sites = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] in UNPICKLING_MODULES:
                    sites.append(f"{where}: imports {name}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in UNPICKLING_CALLS:
            sites.append(f"{where}: calls {name}")
        if name == "yaml.load":
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or "Safe" not in _dotted(loader):
                sites.append(f"{where}: yaml.load without a SafeLoader")
        if name in ("np.load", "numpy.load"):
            allow = _keyword(node, "allow_pickle")
            if not (isinstance(allow, ast.Constant) and allow.value is False):
                sites.append(f"{where}: np.load without allow_pickle=False")
    return sites


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scanner itself: each pattern it forbids, in a file written here, is reported."""
    sample = ROOT / "marquee" / "_scan_sample_for_test.py"
    sample.write_text(
        "import pickle\nimport numpy as np\nimport torch\nimport yaml\n"
        "np.load('a.npz')\nnp.load('a.npz', allow_pickle=False)\ntorch.load('x.pt')\n"
        "yaml.load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\n"
    )
    try:
        found = unpickling_sites(sample)
    finally:
        sample.unlink()
    assert [site.split(": ", 1)[1] for site in found] == [
        "imports pickle",
        "np.load without allow_pickle=False",
        "calls torch.load",
        "yaml.load without a SafeLoader",
    ]


def test_run_time_code_never_unpickles():
    files = runtime_files()
    assert len(files) > 50, "the scan found too few files to mean anything"
    assert [site for path in files for site in unpickling_sites(path)] == []
