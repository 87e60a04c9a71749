"""A packed Python execution environment for Triton's Python backend (`EXECUTION_ENV_PATH`),
for users who run the stock NGC tritonserver image and cannot build their own.

NEVER RUN IN THE NGC CONTAINER HERE: no Docker engine exists where this was written. The
archive's layout is checked by tests/unit/test_execution_env.py. Triton's own loader (the
Python backend of the embedded tritonserver 2.51, the release in NGC 24.10) serves a
model from such an archive through EXECUTION_ENV_PATH, a Python 3.10 one with the
wheel's 3.10 stub on the 3.11 server, in the last test of
tests/integration/test_hermetic_ngc_cpu.py. The container has not.

    python -m marquee.deploy.execution_env --out DIR [--python python3.10]

What Triton's Python backend does with it (python_backend README, "Creating Custom
Execution Environments", and its src/stub_launcher.cc):
- `EXECUTION_ENV_PATH` names a .tar.gz (extracted once per distinct path under
  /tmp/python_env_*) or an unpacked directory; the environment must hold `bin/activate`.
  The stub is started as `source <env>/bin/activate && exec env
  LD_LIBRARY_PATH=<env>/lib:$LD_LIBRARY_PATH <stub> ...`.
- `$$TRITON_MODEL_DIRECTORY` is the model's folder (where config.pbtxt is); a path built
  on it must stay inside that folder, so each Python model gets its own copy of the
  archive. An absolute path (a volume mounted at the same place in every pod) is shared.
- The stub embeds one Python version. NGC 24.10's stub embeds Python 3.10 (the image's
  python3, see deploy/Dockerfile). An environment of another version needs a stub built
  for that version as `triton_python_backend_stub` in each Python model's folder, next to
  config.pbtxt; the nvidia-pytriton wheel ships one per version
  (`pytriton/tritonserver/python_backend_stubs/<X.Y>/triton_python_backend_stub`, built
  for Triton 2.51, the 24.10 release), which this module copies into DIR.

Two kinds of environment, chosen by the interpreter's version:
- Python 3.10 (the container's; the default wherever a `python3.10` that runs is on
  PATH): a plain venv whose `python` links are re-pointed at the image's
  `/usr/bin/python3.10` (`--python-prefix`). The container's own stub and standard
  library serve it.
- Any other version: a venv carries neither libpython nor the standard library, and the
  container has neither for that version, so the environment is made self-contained
  before packing: `lib/libpython<X.Y>.so.1.0` (the stub launcher puts `<env>/lib` on
  LD_LIBRARY_PATH for exactly this), the standard library in `lib/python<X.Y>/`, and a
  real interpreter binary in `bin/` (the embedded interpreter locates its prefix from
  the `python3` it finds first on PATH). pyvenv.cfg goes, so the prefix is the
  environment itself. That interpreter was built on this host: its libpython needs the
  glibc version written to DIR/README.txt (Ubuntu 22.04, the 24.10 image, has 2.35).

Packing: the built-in packer (default) writes venv-pack's layout (the venv's files at the
archive's root, a relocatable `bin/activate`, `#!/usr/bin/env` shebangs, interpreter
links re-pointed) without a download; `--packer venv-pack` uses venv-pack 0.2.0 from PyPI
(Python 3.10 venvs only) with a workaround for its link rewriting, see
`pack_with_venv_pack`. Either archive goes through `check_archive` before it is written.

Files written to DIR: `marquee-routes.tar.gz`, `execution_env.pbtxt` (the parameters
snippet for each Python model's config.pbtxt), `triton_python_backend_stub` (only when
the environment's Python is not 3.10) and `README.txt` (where each goes).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from marquee.deploy.requirements import ROUTES_FILE

# NGC tritonserver 24.10-py3 (Triton 2.51): Ubuntu 22.04, python3 = /usr/bin/python3.10,
# glibc 2.35. deploy/Dockerfile checks the version when the image is built.
CONTAINER_RELEASE = "24.10"
CONTAINER_PYTHON = (3, 10)
CONTAINER_PYTHON_PREFIX = "/usr"
CONTAINER_GLIBC = (2, 35)
ARCHIVE_NAME = "marquee-routes.tar.gz"
VENV_PACK_VERSION = "0.2.0"
SNIPPET_NAME = "execution_env.pbtxt"
STUB_NAME = "triton_python_backend_stub"
NEVER_RUN = f"Never run in the NGC container (tritonserver:{CONTAINER_RELEASE}-py3) here: no Docker engine."
# Left out of a bundled standard library: tests, IDLE, Tk, ensurepip's wheels, caches.
STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "__pycache__"}
_SHEBANG = re.compile(rb"^#!(\S+)(.*)$", re.MULTILINE)

# Sourced by Triton's Python backend (`source <env>/bin/activate`), and by a user's shell.
# It finds the environment from its own location, so the archive can be unpacked anywhere.
ACTIVATE = """\
# Marquee's packed execution environment; source it from bash: `source <env>/bin/activate`.
# Written by marquee/deploy/execution_env.py. Relocatable: the environment is the parent of
# the folder this script is in, wherever it was unpacked.
if [ -n "${_MARQUEE_OLD_PATH+x}" ]; then deactivate; fi
_marquee_bin="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
VIRTUAL_ENV="$(dirname "$_marquee_bin")"
export VIRTUAL_ENV
_MARQUEE_OLD_PATH="$PATH"
PATH="$_marquee_bin:$PATH"
export PATH
# Packages from outside the environment stay out (the python_backend README asks for it).
PYTHONNOUSERSITE=1
export PYTHONNOUSERSITE
unset PYTHONHOME _marquee_bin
deactivate () {
    PATH="$_MARQUEE_OLD_PATH"
    export PATH
    unset VIRTUAL_ENV PYTHONNOUSERSITE _MARQUEE_OLD_PATH
    unset -f deactivate
    hash -r 2>/dev/null || true
}
hash -r 2>/dev/null || true
"""


class ExecutionEnvError(RuntimeError):
    pass


@dataclass(frozen=True)
class Interpreter:
    executable: Path  # the real binary, not a shim or a venv's link
    version: tuple[int, int]
    libdir: Path  # where libpython<X.Y>.so.1.0 is
    ldlibrary: str  # libpython<X.Y>.so(.1.0), empty for a static build
    stdlib: Path  # sysconfig's "stdlib" path

    @property
    def name(self) -> str:
        return f"python{self.version[0]}.{self.version[1]}"

    @property
    def matches_container(self) -> bool:
        return self.version == CONTAINER_PYTHON


_PROBE = (
    "import json, sys, sysconfig; print(json.dumps({'executable': sys.executable, "
    "'base': getattr(sys, '_base_executable', sys.executable), 'version': list(sys.version_info[:2]), "
    "'libdir': sysconfig.get_config_var('LIBDIR'), 'instsoname': sysconfig.get_config_var('INSTSONAME'), "
    "'shared': sysconfig.get_config_var('Py_ENABLE_SHARED'), 'stdlib': sysconfig.get_path('stdlib')}))"
)


def _run_python(python: str | Path, *args: str, **options) -> subprocess.CompletedProcess:
    """The one place this module starts a program, and it is always a Python interpreter:
    the one `--python` names, or one of the venvs this module makes."""
    return subprocess.run([str(python), *args], check=True, **options)


def interpreter(python: str | Path) -> Interpreter:
    """Ask `python` (a path or a name on PATH) what it is."""
    try:
        reply = _run_python(python, "-c", _PROBE, capture_output=True, text=True)
    except FileNotFoundError:
        raise ExecutionEnvError(f"no Python interpreter {python!r}") from None
    info = json.loads(reply.stdout)
    return Interpreter(
        executable=Path(os.path.realpath(info["base"])),
        version=tuple(info["version"]),
        libdir=Path(info["libdir"]),
        ldlibrary=info["instsoname"] if info["shared"] else "",
        stdlib=Path(info["stdlib"]),
    )


def default_python() -> str:
    """The container's Python version where this host has one that runs (a pyenv shim
    may exist and refuse), else this interpreter."""
    wanted = "python{}.{}".format(*CONTAINER_PYTHON)
    try:
        return str(interpreter(wanted).executable)
    except (ExecutionEnvError, subprocess.CalledProcessError, OSError, ValueError):
        return sys.executable


# -- building -------------------------------------------------------------------------------


def build_venv(
    python: Interpreter, requirement_files: list[Path], target: Path, pip_args: tuple[str, ...] = ()
) -> Path:
    """A fresh venv at `target` (no pip, no setuptools) holding exactly what the requirement
    files install. pip runs from this interpreter, installing into the venv (`--python`)."""
    if target.exists():
        raise ExecutionEnvError(f"{target} exists; build into a new folder")
    _run_python(python.executable, "-m", "venv", "--without-pip", str(target))
    options = ["--no-warn-script-location", "--disable-pip-version-check", *pip_args]
    for path in requirement_files:
        options += ["-r", str(path)]
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install", "--quiet", *options],
        check=True,
        env={**os.environ, "PYTHONNOUSERSITE": "1"},
    )
    return target


def _glibc_needed(path: Path) -> tuple[int, int]:
    """The newest GLIBC_2.x symbol version an ELF file refers to (0, 0 if none)."""
    versions = {int(m) for m in re.findall(rb"GLIBC_2\.([0-9]+)", path.read_bytes())}
    return (2, max(versions)) if versions else (0, 0)


def bundle_interpreter(env: Path, python: Interpreter) -> tuple[int, int]:
    """Make `env` its own Python prefix: libpython, the standard library and a real
    interpreter binary inside it, no pyvenv.cfg. Returns the glibc version libpython needs."""
    if not python.ldlibrary:
        raise ExecutionEnvError(f"{python.executable} is a static build: no libpython for the stub to load")
    libpython = python.libdir / python.ldlibrary
    shutil.copy2(libpython, env / "lib" / python.ldlibrary)
    target_stdlib = env / "lib" / python.name
    for entry in python.stdlib.iterdir():
        if entry.name in STDLIB_SKIP:
            continue
        destination = target_stdlib / entry.name
        if entry.is_dir():
            shutil.copytree(entry, destination, ignore=shutil.ignore_patterns(*STDLIB_SKIP), symlinks=True)
        else:
            shutil.copy2(entry, destination)
    for link in ("python", "python3", python.name):
        (env / "bin" / link).unlink(missing_ok=True)
    shutil.copy2(python.executable, env / "bin" / python.name)
    for link in ("python", "python3"):
        (env / "bin" / link).symlink_to(python.name)
    (env / "pyvenv.cfg").unlink()
    return _glibc_needed(libpython)


# -- packing --------------------------------------------------------------------------------


def _venv_home(env: Path) -> str | None:
    config = env / "pyvenv.cfg"
    if not config.is_file():
        return None
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return value.strip()
    return None


def _rewrite_shebang(data: bytes, env: Path) -> bytes:
    match = _SHEBANG.match(data)
    if not match or not match.group(1).startswith(str(env).encode()):
        return data
    program = match.group(1).rsplit(b"/", 1)[-1]
    return data.replace(match.group(0), b"#!/usr/bin/env " + program + match.group(2), 1)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


def pack_builtin(env: Path, archive_path: Path, python_prefix: str | None) -> Path:
    """venv-pack's layout without venv-pack: every file of `env` at the archive's root, a
    relocatable bin/activate, links to the base interpreter re-pointed at
    `<python_prefix>/bin/python<X.Y>`, and scripts' shebangs made `#!/usr/bin/env ...`."""
    env = env.resolve()
    home = _venv_home(env)
    for pth in (env / "lib").glob("python*/site-packages/*.pth"):
        for line in pth.read_text().splitlines():
            if (
                line
                and not line.startswith(("#", "import "))
                and not str(Path(pth.parent, line).resolve()).startswith(str(env))
            ):
                raise ExecutionEnvError(f"{pth.name} points outside the environment ({line}): an editable install?")
    with tarfile.open(archive_path, "w:gz", compresslevel=6) as archive:
        for root, dirs, files in os.walk(env):
            dirs.sort()
            for name in sorted(files) + sorted(d for d in dirs if (Path(root) / d).is_symlink()):
                path = Path(root) / name
                relative = path.relative_to(env).as_posix()
                if relative.startswith(("bin/activate", "bin/Activate")) or relative == "pyvenv.cfg":
                    continue
                if "/__pycache__/" in f"/{relative}":
                    continue
                if path.is_symlink():
                    target = os.readlink(path)
                    if os.path.isabs(target):
                        if target.startswith(str(env) + "/"):
                            target = os.path.relpath(target, path.parent)
                        elif home and python_prefix and target.startswith(home + "/"):
                            target = f"{python_prefix}/bin/{Path(target).name}"
                    info = tarfile.TarInfo(relative)
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                    archive.addfile(info)
                    continue
                mode = stat.S_IMODE(path.stat().st_mode)
                if relative.startswith("bin/") and mode & stat.S_IXUSR:
                    _add_bytes(archive, relative, _rewrite_shebang(path.read_bytes(), env), mode)
                else:
                    archive.add(path, relative, recursive=False)
        _add_bytes(archive, "bin/activate", ACTIVATE.encode(), 0o644)
        if home is not None:
            config = (env / "pyvenv.cfg").read_text()
            if python_prefix:
                config = config.replace(home, f"{python_prefix}/bin")
            _add_bytes(archive, "pyvenv.cfg", config.encode(), 0o644)
    return archive_path


def pack_with_venv_pack(env: Path, archive_path: Path, python_prefix: str | None, workdir: Path) -> Path:
    """venv-pack (PyPI), from this interpreter or from a throwaway venv in `workdir`.

    venv-pack 0.2.0 (its latest release) rewrites a link to the base interpreter by
    replacing `<home>/python` in its target: a modern venv's `bin/python3.10 ->
    <home>/python3.10` would come out as `/usr/bin/python3.103.10`. So the link is
    pointed at `<home>/python` first, which venv-pack turns into
    `<python_prefix>/bin/python3.10`. `check_archive` verifies what it wrote."""
    home = _venv_home(env)
    if home is None:
        raise ExecutionEnvError(f"{env} has no pyvenv.cfg: venv-pack packs venvs only")
    versioned = sorted((env / "bin").glob("python3.*"))
    for link in versioned:
        if link.is_symlink() and os.path.isabs(os.readlink(link)) and (Path(home) / "python").exists():
            link.unlink()
            link.symlink_to(Path(home) / "python")
    arguments = ["--prefix", str(env), "--output", str(archive_path), "--force", "--quiet"]
    if python_prefix:
        arguments += ["--python-prefix", python_prefix]
    try:
        import venv_pack  # noqa: F401

        python: str | Path = sys.executable
    except ImportError:
        tools = workdir / "venv-pack"
        subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True, capture_output=True)
        python = tools / "bin" / "python"
        _run_python(python, "-m", "pip", "install", "--quiet", f"venv-pack=={VENV_PACK_VERSION}", capture_output=True)
    _run_python(python, "-m", "venv_pack", *arguments, capture_output=True, text=True)
    archive_path.chmod(0o644)  # venv-pack leaves 0600: unreadable to the image's uid 1000
    return archive_path


def check_archive(archive_path: Path, version: tuple[int, int], python_prefix: str | None) -> list[str]:
    """What would stop Triton's Python backend from using the archive: no bin/activate,
    links that lead outside it (other than to `<python_prefix>/bin/python<X.Y>`), a
    missing interpreter, standard library or libpython where the archive must carry them."""
    name = f"python{version[0]}.{version[1]}"
    problems = []
    with tarfile.open(archive_path, "r:gz") as archive:
        members = {member.name.removeprefix("./"): member for member in archive.getmembers()}
        activate = members.get("bin/activate")
        if activate is None or not activate.isfile():
            problems.append("no bin/activate (Triton's Python backend sources it)")
        allowed = {f"{python_prefix}/bin/{name}"} if python_prefix else set()
        for path, member in members.items():
            if not member.issym():
                continue
            target = member.linkname
            if os.path.isabs(target):
                if target not in allowed:
                    problems.append(f"{path} -> {target}: an absolute link that the archive cannot carry")
            elif os.path.normpath(os.path.join(os.path.dirname(path), target)).startswith(".."):
                problems.append(f"{path} -> {target}: leads outside the archive")
        if f"bin/{name}" not in members:
            problems.append(f"no bin/{name}")
        if "pyvenv.cfg" in members:
            config = archive.extractfile(members["pyvenv.cfg"]).read().decode()
            homes = [
                line.partition("=")[2].strip()
                for line in config.splitlines()
                if line.partition("=")[0].strip() == "home"
            ]
            if python_prefix and homes != [f"{python_prefix}/bin"]:
                problems.append(f"pyvenv.cfg home {homes}; expected {python_prefix}/bin")
        else:
            for required in (f"lib/lib{name}.so.1.0", f"lib/{name}/os.py", f"lib/{name}/lib-dynload/"):
                present = (
                    any(path.startswith(required) for path in members)
                    if required.endswith("/")
                    else (required in members)
                )
                if not present:
                    problems.append(f"no {required}: a self-contained environment must carry it")
            interpreter = members.get(f"bin/{name}")
            if interpreter is not None and not interpreter.isfile():
                problems.append(f"bin/{name} must be the interpreter itself (its location is the prefix)")
    return problems


# -- what goes in the configs ---------------------------------------------------------------


def python_models() -> list[str]:
    """The served models Triton's own Python backend runs (the routes); on NGC the
    onnxruntime/dali configs load the native backends, which need no environment."""
    from marquee.specs import CATALOGUE

    return sorted(name for name, spec in CATALOGUE.items() if spec.backend == "python")


def parameter_snippet(archive_name: str = ARCHIVE_NAME, location: str = "$$TRITON_MODEL_DIRECTORY") -> str:
    return (
        "# Append to the config.pbtxt of each Python model. " + NEVER_RUN + "\n"
        "# $$TRITON_MODEL_DIRECTORY is the model's folder; put the archive there (a path built on it\n"
        "# must not leave the folder), or use an absolute path that holds one shared copy.\n"
        "parameters {\n"
        '  key: "EXECUTION_ENV_PATH"\n'
        f'  value: {{string_value: "{location}/{archive_name}"}}\n'
        "}\n"
    )


def pytriton_stub(version: tuple[int, int]) -> Path:
    from marquee.server.embedded import pytriton_root

    stub = pytriton_root() / "tritonserver" / "python_backend_stubs" / f"{version[0]}.{version[1]}" / STUB_NAME
    if not stub.is_file():
        raise ExecutionEnvError(f"the nvidia-pytriton wheel has no stub for Python {version[0]}.{version[1]}: {stub}")
    return stub


def readme(python: Interpreter, glibc: tuple[int, int] | None, packer: str, requirement_files: list[Path]) -> str:
    models = python_models()
    version = "{}.{}".format(*python.version)
    lines = [
        f"Marquee's Python execution environment for tritonserver:{CONTAINER_RELEASE}-py3. {NEVER_RUN}",
        "",
        f"{ARCHIVE_NAME}: a venv of Python {version} holding "
        + ", ".join(path.name for path in requirement_files)
        + f", packed by {packer}; bin/activate is relocatable.",
        f"The container's Python is {CONTAINER_PYTHON[0]}.{CONTAINER_PYTHON[1]} (Ubuntu 22.04, glibc 2.35).",
        "",
        "For each Python model (" + ", ".join(models) + "):",
        f"  1. copy {ARCHIVE_NAME} into the model's folder, next to config.pbtxt;",
        f"  2. append {SNIPPET_NAME} to its config.pbtxt;",
    ]
    if python.matches_container:
        lines.append("  (no custom stub: the container's own stub embeds Python 3.10, the environment's version.)")
        lines.append(
            f"  The `python` links point at {CONTAINER_PYTHON_PREFIX}/bin/{python.name}, the image's interpreter."
        )
    else:
        lines.append(
            f"  3. copy {STUB_NAME} (nvidia-pytriton's stub for Python {version}, Triton 2.51) into the model's "
            "folder, next to config.pbtxt: the container's stub embeds Python 3.10, not " + version + "."
        )
        lines.append(
            f"  The archive carries libpython{version}, its standard library and interpreter, built on this host;"
            f" libpython needs glibc {glibc[0]}.{glibc[1]}"
            + (" (the image has 2.35: it fits)." if glibc <= CONTAINER_GLIBC else " -- NEWER THAN THE IMAGE'S 2.35.")
        )
    lines += [
        "",
        "models/recommend/",
        "  config.pbtxt            (+ the EXECUTION_ENV_PATH parameter)",
        f"  {ARCHIVE_NAME}",
    ]
    if not python.matches_container:
        lines.append(f"  {STUB_NAME}")
    lines += ["  1/model.py ...", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class Packed:
    archive: Path
    snippet: Path
    readme: Path
    stub: Path | None
    packer: str
    python: Interpreter


def build(
    out: Path,
    python: str | Path | None = None,
    requirement_files: list[Path] | None = None,
    packer: str = "builtin",
    python_prefix: str | None = CONTAINER_PYTHON_PREFIX,
    pip_args: tuple[str, ...] = (),
) -> Packed:
    """Build, pack, check and describe the environment in `out` (see the module docstring).
    `packer`: "builtin" (the default: no download, and it writes what venv-pack would) or
    "venv-pack" (installed from PyPI into a throwaway venv unless importable here;
    Python 3.10 environments only: it packs venvs, not self-contained prefixes)."""
    if packer not in ("venv-pack", "builtin"):
        raise ExecutionEnvError(f"packer {packer!r}: expected builtin or venv-pack")
    requirement_files = [Path(p).resolve() for p in (requirement_files or [ROUTES_FILE])]
    interp = interpreter(python or default_python())
    if packer == "venv-pack" and not interp.matches_container:
        raise ExecutionEnvError("venv-pack packs venvs; a self-contained Python prefix is packed by builtin")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    glibc = None
    with tempfile.TemporaryDirectory(prefix="marquee-exec-env-") as work:
        env = build_venv(interp, requirement_files, Path(work) / "env", pip_args)
        if not interp.matches_container:
            glibc = bundle_interpreter(env, interp)
        archive = out / ARCHIVE_NAME
        prefix = python_prefix if interp.matches_container else None
        if packer == "venv-pack":
            try:
                pack_with_venv_pack(env, archive, prefix, Path(work))
            except subprocess.CalledProcessError as error:
                raise ExecutionEnvError(f"venv-pack failed: {error.stderr or error}") from error
            packer = f"venv-pack {VENV_PACK_VERSION}"
        else:
            pack_builtin(env, archive, prefix)
            packer = "marquee's built-in packer (venv-pack's layout)"
    problems = check_archive(archive, interp.version, prefix)
    if problems:
        raise ExecutionEnvError(f"{archive} is not usable as EXECUTION_ENV_PATH: " + "; ".join(problems))
    stub = None
    if not interp.matches_container:
        stub = out / STUB_NAME
        shutil.copy2(pytriton_stub(interp.version), stub)
    snippet = out / SNIPPET_NAME
    snippet.write_text(parameter_snippet())
    notes = out / "README.txt"
    notes.write_text(readme(interp, glibc, packer, requirement_files))
    return Packed(archive, snippet, notes, stub, packer, interp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marquee.deploy.execution_env",
        description="Pack the route requirements as a Triton EXECUTION_ENV_PATH archive. " + NEVER_RUN,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the archive, snippet, stub and README.txt")
    parser.add_argument(
        "--python", default=None, help="interpreter to build with (default: python3.10, the container's, if on PATH)"
    )
    parser.add_argument(
        "--requirements",
        type=Path,
        action="append",
        help="requirement file(s) (default: deploy/requirements-routes.txt)",
    )
    parser.add_argument("--packer", choices=("builtin", "venv-pack"), default="builtin")
    parser.add_argument(
        "--python-prefix",
        default=CONTAINER_PYTHON_PREFIX,
        help="where the image's interpreter lives (Python 3.10 environments only; default /usr)",
    )
    args = parser.parse_args(argv)
    packed = build(args.out, args.python, args.requirements, args.packer, args.python_prefix)
    size = packed.archive.stat().st_size / 2**20
    print(f"{packed.archive} ({size:.0f} MiB, Python {'.'.join(map(str, packed.python.version))}, {packed.packer})")
    print(f"{packed.snippet}\n{packed.readme}" + (f"\n{packed.stub}" if packed.stub else ""))
    print(NEVER_RUN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
