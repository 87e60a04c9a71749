"""Assemble what the embedded `tritonserver` needs: binary, backend directory, environment.

The nvidia-pytriton wheel ships a genuine Triton 2.51 server with only the Python
backend. Three things make it run outside PyTriton:
1. a backend directory holding `python/` plus the stub built for *this* interpreter
   (the wheel ships one stub per Python version);
2. the wheel's bundled shared libraries on LD_LIBRARY_PATH, and this interpreter's own
   libpython ahead of the system one, so the stub embeds the same Python;
3. this environment's `bin/` first on PATH: the stub's embedded interpreter finds its
   prefix (and so the venv's numpy and onnxruntime) through `python3` on PATH.
Marquee's Python-based backends (`marquee/backends/<name>/model.py`) are copied next to
`python/`, so configs that say `backend: "onnxruntime"` load them.

`server_environment(python_env)` swaps step 3's environment for another virtual
environment made from the same interpreter (the hermetic test's, which holds only the
deploy/ requirement files): its `bin/` goes first on PATH instead, and nothing of this
environment stays on PATH or in PYTHONPATH.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from marquee.errors import ServerError

PYTHON_BASED_BACKENDS = Path(__file__).resolve().parent.parent / "backends"
STUB_NAME = "triton_python_backend_stub"


def pytriton_root() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("nvidia-pytriton is not installed; run ./bootstrap.sh (it pins nvidia-pytriton==0.7.0)")
    return Path(next(iter(spec.submodule_search_locations)))


def tritonserver_binary() -> Path:
    binary = pytriton_root() / "tritonserver" / "bin" / "tritonserver"
    if not binary.is_file():
        raise ServerError(f"tritonserver binary missing from the nvidia-pytriton wheel: {binary}")
    return binary


def _python_stub() -> Path:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stubs = pytriton_root() / "tritonserver" / "python_backend_stubs"
    stub = stubs / version / STUB_NAME
    if not stub.is_file():
        available = sorted(p.name for p in stubs.iterdir()) if stubs.is_dir() else []
        raise ServerError(f"no Python backend stub for Python {version}; the wheel ships {available}")
    return stub


def build_backend_directory(target: Path) -> Path:
    """Write a Triton backend directory: `python/` (+stub) and Marquee's Python-based backends."""
    target.mkdir(parents=True, exist_ok=True)
    python_dir = target / "python"
    shutil.copytree(pytriton_root() / "tritonserver" / "backends" / "python", python_dir, dirs_exist_ok=True)
    shutil.copy2(_python_stub(), python_dir / STUB_NAME)
    for backend in sorted(PYTHON_BASED_BACKENDS.iterdir()):
        if (backend / "model.py").is_file():
            (target / backend.name).mkdir(exist_ok=True)
            for source in sorted(backend.glob("*.py")):  # model.py and the helpers it imports
                shutil.copy2(source, target / backend.name / source.name)
    return target


def check_python_env(python_env: Path) -> Path:
    """A virtual environment the stub can embed: made from this interpreter's Python
    version (the stub and libpython in the backend directory are this version's)."""
    python_env = Path(python_env).resolve()
    config = python_env / "pyvenv.cfg"
    if not (python_env / "bin" / "python3").exists() or not config.is_file():
        raise ServerError(f"{python_env} is not a virtual environment (no bin/python3 and pyvenv.cfg)")
    settings = dict(line.split("=", 1) for line in config.read_text().splitlines() if "=" in line)
    version = {k.strip(): v.strip() for k, v in settings.items()}.get("version", "")
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version.split(".")[:2] != wanted.split("."):
        raise ServerError(f"{python_env} is Python {version or '?'}; the stub embeds Python {wanted}")
    return python_env


def server_environment(python_env: Path | None = None) -> dict[str, str]:
    """tritonserver's environment. `python_env`: a virtual environment of this Python
    version whose `bin/` goes first on PATH instead of this one's (default: this one)."""
    env = dict(os.environ)
    libs = [
        str(pytriton_root().parent / "nvidia_pytriton.libs"),
        str(sysconfig.get_config_var("LIBDIR")),
    ]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    bin_dir = Path(sys.executable).parent
    if python_env is not None:
        # Leave nothing of this environment where the stub's interpreter could find it.
        own = {str(bin_dir), str(Path(sys.prefix) / "bin")}
        path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry and entry not in own]
        env["PATH"] = os.pathsep.join(path)
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(name, None)
        bin_dir = check_python_env(python_env) / "bin"
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    # Model code runs in stub processes; keep their thread pools to what the config asks.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env
