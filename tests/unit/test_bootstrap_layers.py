"""bootstrap.sh's system-package layers against the code that calls system tools.

bootstrap.sh keeps two lists: RUNTIME_SYSTEM_PACKAGES (a plain `./bootstrap.sh` installs
them; `marquee up` and the other runtime commands may need them) and
TEST_ONLY_SYSTEM_PACKAGES (installed by `--test` only). A tool that runtime code starts
but that is missing from the runtime list works in CI, which always runs `--test`, and
fails on a user's machine: that is how `marquee up` once died on espeak-ng.

These tests read every subprocess call, `os.system`/`os.exec*`/`os.spawn*`,
`asyncio.create_subprocess_*` and `shutil.which` in the runtime packages (marquee/,
export/, clients/; not tests, and not perf/, whose tools come with `--test`/`--perf`),
resolve the executable's name (a literal, or a module constant, also one imported from
another first-party module), and require it to be a runtime entry of bootstrap.sh. A call
whose executable cannot be resolved must be listed in DYNAMIC_CALLS with the reason it
needs no system package.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "bootstrap.sh"
RUNTIME_PACKAGES = ("marquee", "export", "clients")

# Executables that come with the Python environment, not with a system package.
FROM_PYTHON = {"python", "python3", "python3.11"}

# Calls whose executable is computed, keyed by (file, enclosing function), with why it
# needs no system package. A new computed call fails until it is listed here.
DYNAMIC_CALLS = {
    ("marquee/cli.py", "perf_analyzer"): "perf_analyzer, fetched by `marquee perf setup` (--test/--perf)",
    ("marquee/server/process.py", "TritonServer._launch"): "tritonserver from the nvidia-pytriton wheel",
    ("marquee/deploy/execution_env.py", "_run_python"): "a Python interpreter: --python's, or a venv made from it",
}

# Host tools that runtime code only probes for, and does without when they are absent:
# (file, function) -> why no system package is needed. Scoped like DYNAMIC_CALLS, so a new
# call of the same tool elsewhere is still judged.
OPTIONAL_PROBES = {
    ("export/tensorrt.py", "_gpu_present"): "nvidia-smi: checked with shutil.which; without it the host has no GPU",
}

SUBPROCESS_FUNCTIONS = {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}
OS_FUNCTIONS = re.compile(r"^(system|popen|exec[lv]p?e?|spawn[lv]p?e?|posix_spawnp?)$")
ASYNCIO_FUNCTIONS = {"create_subprocess_exec", "create_subprocess_shell"}


# -- bootstrap.sh -----------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str  # "cmd" or "lib"
    name: str  # the executable, or the shared library
    package: str  # the Debian package


def bootstrap_layer(variable: str, text: str | None = None) -> list[Entry]:
    """The entries of one `NAME=( ... )` list in bootstrap.sh."""
    text = BOOTSTRAP.read_text() if text is None else text
    match = re.search(rf"^{variable}=\((.*?)^\)", text, re.S | re.M)
    assert match, f"bootstrap.sh has no {variable}=( ... ) list"
    entries = []
    for line in match.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        item = re.fullmatch(r'"(cmd|lib):([^=" ]+)=([^=" ]+)"', line)
        assert item, f'{variable}: cannot read entry {line!r} (expected "cmd:NAME=PACKAGE" or "lib:...")'
        entries.append(Entry(*item.groups()))
    return entries


def commands_of(variable: str) -> set[str]:
    return {entry.name for entry in bootstrap_layer(variable) if entry.kind == "cmd"}


RUNTIME, TEST_ONLY = "RUNTIME_SYSTEM_PACKAGES", "TEST_ONLY_SYSTEM_PACKAGES"


# -- the code ---------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    path: str  # relative to the repository
    line: int
    function: str  # enclosing Class.function, or "<module>"
    call: str  # e.g. "subprocess.run"
    executable: str | None  # None: could not be resolved


def runtime_sources() -> list[Path]:
    files = []
    for package in RUNTIME_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if any(part in {"tests", "test"} or part.startswith("test_") for part in relative.parts):
                continue
            files.append(path)
    return files


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class _Constants:
    """Module-level `NAME = "..."` / `NAME = [...]` assignments, across first-party modules."""

    def __init__(self, extra: dict[str, Path] | None = None) -> None:
        self._cache: dict[str, dict[str, ast.expr]] = {}
        self._extra = extra or {}  # modules outside the repository (the tests' samples)

    def of(self, module: str) -> dict[str, ast.expr]:
        if module in self._extra and module not in self._cache:
            self._cache[module] = self._read(self._extra[module], module)
        if module not in self._cache:
            self._cache[module] = {}
            for candidate in (
                (ROOT / Path(*module.split("."))).with_suffix(".py"),
                ROOT / Path(*module.split(".")) / "__init__.py",
            ):
                if candidate.is_file():
                    self._cache[module] = self._read(candidate, module)
                    break
        return self._cache[module]

    def _read(self, path: Path, module: str) -> dict[str, ast.expr]:
        tree = ast.parse(path.read_text(), str(path))
        values: dict[str, ast.expr] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        values[target.id] = node.value
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    # Resolved lazily: a marker naming the module the constant comes from.
                    values[alias.asname or alias.name] = ast.Constant(value=_Imported(node.module, alias.name))
        return values

    def resolve(self, module: str, node: ast.expr, depth: int = 0) -> ast.expr | None:
        """Follow names to their module-level value (also across `from x import NAME`)."""
        while depth < 10:
            depth += 1
            if isinstance(node, ast.Name):
                value = self.of(module).get(node.id)
                if value is None:
                    return None
                node = value
            elif isinstance(node, ast.Constant) and isinstance(node.value, _Imported):
                module, name = node.value.module, node.value.name
                value = self.of(module).get(name)
                if value is None:
                    return None
                node = value
            else:
                return node
        return None


@dataclass(frozen=True)
class _Imported:
    module: str
    name: str


def _call_name(func: ast.expr, aliases: dict[str, str]) -> str | None:
    """'subprocess.run', 'os.system', ... for the calls that start a program, else None."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        owner = aliases.get(func.value.id, func.value.id)
        name = func.attr
    elif isinstance(func, ast.Name) and func.id in aliases and "." in aliases[func.id]:
        owner, name = aliases[func.id].rsplit(".", 1)
    else:
        return None
    if owner == "subprocess" and name in SUBPROCESS_FUNCTIONS:
        return f"subprocess.{name}"
    if owner == "os" and OS_FUNCTIONS.match(name):
        return f"os.{name}"
    if owner == "asyncio" and name in ASYNCIO_FUNCTIONS:
        return f"asyncio.{name}"
    if owner == "shutil" and name == "which":
        return "shutil.which"
    return None


def _is_python(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        and node.attr == "executable"
    )


def _executable(call: ast.Call, name: str, module: str, constants: _Constants) -> str | None:
    if not call.args:
        return None
    shell = name in {"os.system", "os.popen", "asyncio.create_subprocess_shell", "subprocess.getoutput"} or any(
        keyword.arg == "shell" and isinstance(keyword.value, ast.Constant) and keyword.value.value is True
        for keyword in call.keywords
    )
    first = call.args[0]
    if name.startswith("os.exec") or name.startswith("os.spawn") or name.startswith("os.posix_spawn"):
        # os.execv(path, args), os.spawnv(mode, path, args): the program is the first str.
        first = call.args[1] if name.startswith("os.spawn") and len(call.args) > 1 else first
    value = constants.resolve(module, first)
    if isinstance(value, ast.List | ast.Tuple):
        if not value.elts:
            return None
        head = value.elts[0]
        if _is_python(head):
            return "python"
        value = constants.resolve(module, head)
    if _is_python(first) or (value is not None and _is_python(value)):
        return "python"
    if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.strip():
        text = value.value.strip()
        program = text.split()[0] if shell or name == "shutil.which" else text
        return Path(program).name
    if isinstance(value, ast.JoinedStr) and value.values and isinstance(value.values[0], ast.Constant):
        # f"espeak-ng {args}": the literal head names the program.
        head = str(value.values[0].value).strip()
        return Path(head.split()[0]).name if head else None
    return None


def tool_calls(paths: list[Path] | None = None) -> list[ToolCall]:
    paths = runtime_sources() if paths is None else paths
    outside = {path.stem: path for path in paths if not path.is_relative_to(ROOT)}
    constants = _Constants(outside)
    found: list[ToolCall] = []
    for path in paths:
        found += _scan(path, constants)
    return found


def _scan(path: Path, constants: _Constants) -> list[ToolCall]:
    inside = path.is_relative_to(ROOT)
    module = _module_name(path) if inside else path.stem
    shown = str(path.relative_to(ROOT)) if inside else str(path)
    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in {"subprocess", "os", "shutil", "asyncio"}:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found: list[ToolCall] = []
    stack: list[tuple[ast.AST, list[str]]] = [(tree, [])]
    while stack:
        node, scope = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.append((child, [*scope, child.name]))
                continue
            if isinstance(child, ast.Call) and (name := _call_name(child.func, aliases)) is not None:
                executable = _executable(child, name, module, constants)
                found.append(ToolCall(shown, child.lineno, ".".join(scope) or "<module>", name, executable))
            stack.append((child, scope))
    return sorted(found, key=lambda call: call.line)


def layer_problems(calls: list[ToolCall], runtime: set[str], test_only: set[str]) -> list[str]:
    problems = []
    for call in calls:
        where = f"{call.path}:{call.line} ({call.function}, {call.call})"
        if call.executable is None:
            if (call.path, call.function) not in DYNAMIC_CALLS:
                problems.append(
                    f"{where}: cannot tell which program this starts; pass a literal name (or a module "
                    "constant), or list the call in DYNAMIC_CALLS with why it needs no system package"
                )
        elif call.executable in FROM_PYTHON or (call.path, call.function) in OPTIONAL_PROBES:
            continue
        elif call.executable in test_only:
            problems.append(
                f"{where}: runtime code calls `{call.executable}`, which bootstrap.sh installs only with "
                "--test (TEST_ONLY_SYSTEM_PACKAGES); move it to RUNTIME_SYSTEM_PACKAGES or drop the call"
            )
        elif call.executable not in runtime:
            problems.append(
                f"{where}: runtime code calls `{call.executable}`, which is not in bootstrap.sh's "
                "RUNTIME_SYSTEM_PACKAGES; a plain ./bootstrap.sh would not install it"
            )
    return problems


# -- tests ------------------------------------------------------------------------


def test_the_layers_are_readable_and_disjoint():
    runtime = bootstrap_layer("RUNTIME_SYSTEM_PACKAGES")
    test_only = bootstrap_layer("TEST_ONLY_SYSTEM_PACKAGES")
    assert runtime and test_only
    assert not {e.package for e in runtime} & {e.package for e in test_only}
    assert "espeak-ng" in commands_of(RUNTIME), "marquee up's Whisper validation speaks with espeak-ng"
    assert "redis-server" in commands_of(TEST_ONLY)
    assert any(e.kind == "lib" and e.name.startswith("libpython") for e in runtime)


def test_each_layer_is_listed_once_in_bootstrap():
    text = BOOTSTRAP.read_text()
    for variable in ("RUNTIME_SYSTEM_PACKAGES", "TEST_ONLY_SYSTEM_PACKAGES"):
        assert len(re.findall(rf"^{variable}=\(", text, re.M)) == 1
    # No package names hidden in install commands outside the two lists.
    outside = re.sub(r"^[A-Z_]*SYSTEM_PACKAGES=\(.*?^\)", "", text, flags=re.S | re.M)
    for entry in bootstrap_layer("RUNTIME_SYSTEM_PACKAGES") + bootstrap_layer("TEST_ONLY_SYSTEM_PACKAGES"):
        if entry.kind == "cmd":
            assert not re.search(rf"apt(-get)? .*\b{re.escape(entry.package)}\b", outside), entry


def test_the_scan_finds_the_known_calls():
    calls = tool_calls()
    executables = {(c.path, c.executable) for c in calls}
    assert ("export/whisper/pipeline.py", "espeak-ng") in executables
    # ESPEAK is a module constant; the scan follows it.
    assert ("marquee/transcription/speech.py", "espeak-ng") in executables


def test_runtime_code_calls_only_runtime_system_tools():
    problems = layer_problems(tool_calls(), commands_of(RUNTIME), commands_of(TEST_ONLY))
    assert not problems, "\n".join(problems)


def test_dynamic_calls_are_still_there():
    """An entry in DYNAMIC_CALLS for a call that no longer exists is dropped, not kept as a free pass."""
    unresolved = {(c.path, c.function) for c in tool_calls() if c.executable is None}
    assert set(DYNAMIC_CALLS) <= unresolved, set(DYNAMIC_CALLS) - unresolved


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('import subprocess\nsubprocess.run(["ffmpeg", "-i", "x"])\n', "ffmpeg"),
        ('import subprocess\nTOOL = "sox"\ndef f():\n    subprocess.check_output([TOOL, "x"])\n', "sox"),
        ('from subprocess import Popen\nPopen(("redis-server", "--port", "0"))\n', "redis-server"),
        ('import subprocess\nsubprocess.run("redis-cli ping", shell=True)\n', "redis-cli"),
        ('import os\nos.system("/usr/bin/lame -h x")\n', "lame"),
        ('import shutil\nshutil.which("espeak-ng")\n', "espeak-ng"),
        ('import subprocess, sys\nsubprocess.run([sys.executable, "-m", "x"])\n', "python"),
        ("import subprocess\ndef f(cmd):\n    subprocess.run(cmd)\n", None),
    ],
)
def test_the_scan_resolves(tmp_path, source, expected):
    path = tmp_path / "sample.py"
    path.write_text(source)
    (call,) = tool_calls([path])
    assert call.executable == expected


def test_a_runtime_call_of_an_unlisted_or_test_only_tool_fails(tmp_path):
    """The guard can fail: a runtime module that starts sox, or redis-server, is reported."""
    path = tmp_path / "sample.py"
    path.write_text('import subprocess\nsubprocess.run(["sox", "a.wav", "b.wav"])\nsubprocess.run(["redis-server"])\n')
    problems = layer_problems(tool_calls([path]), commands_of(RUNTIME), commands_of(TEST_ONLY))
    assert len(problems) == 2
    assert "`sox`" in problems[0] and "not in bootstrap.sh's RUNTIME_SYSTEM_PACKAGES" in problems[0]
    assert "`redis-server`" in problems[1] and "only with --test" in problems[1]


def test_the_runtime_only_path_masks_the_test_only_tools(tmp_path):
    """.ci/runtime_only_path hides exactly bootstrap.sh's test-only commands."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ["redis-server", "redis-cli", "espeak-ng", "ls"]:
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    farm = tmp_path / "farm"
    path = subprocess.run(
        ["bash", str(ROOT / ".ci" / "runtime_only_path"), str(farm)],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    visible = {entry.name for directory in path.split(os.pathsep) for entry in Path(directory).iterdir()}
    assert {"espeak-ng", "ls"} <= visible
    assert not commands_of(TEST_ONLY) & visible
