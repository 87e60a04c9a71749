"""The peer systems the one-run report compares against, and where each one comes from.

Most peers are Marquee's own export or test dependencies (faster-whisper, NudeNet,
Hugging Face transformers, ONNX Runtime). Ray Serve is not: it wants protobuf >= 6, which
Marquee's tritonclient does not take, so it lives in its own virtual environment,
`.venv-peers`, that also sees `.venv`'s packages (after its own) through a .pth file.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

PEERS_VENV = Path(".venv-peers")
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
RAY_REQUIREMENT = "ray[serve]==2.60.0"  # the version measured in perf/reports/one_run
_LINK = "zz_marquee_venv.pth"  # sorts last: .venv-peers' own protobuf wins


def peers_site_packages(venv: Path = PEERS_VENV) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def ray_available() -> bool:
    if not PEERS_PYTHON.is_file():
        return False
    found = subprocess.run([str(PEERS_PYTHON), "-c", "import ray.serve"], capture_output=True)
    return found.returncode == 0


def install_peers(venv: Path = PEERS_VENV) -> Path:
    """Create `venv` with Ray Serve, linked to the running interpreter's packages."""
    python = venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", RAY_REQUIREMENT], check=True)
    (peers_site_packages(venv) / _LINK).write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python
