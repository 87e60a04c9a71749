"""marquee.deploy.execution_env: the packed EXECUTION_ENV_PATH archive, built for real from
a tiny requirements file (one pure-Python package, a wheel written here, installed with
--no-index) and read back. Never run in the NGC container here; Triton's own loader runs
one in tests/integration/test_hermetic_ngc_cpu.py."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from marquee import render
from marquee.deploy import execution_env
from marquee.deploy.execution_env import (
    ARCHIVE_NAME,
    SNIPPET_NAME,
    STUB_NAME,
    build,
    check_archive,
    parameter_snippet,
    python_models,
    pytriton_stub,
)
from marquee.specs import CATALOGUE

PACKAGE = "marquee_probe_pkg"
THIS = sys.version_info[:2]
NAME = f"python{THIS[0]}.{THIS[1]}"


def write_wheel(folder: Path, value: int = 42) -> Path:
    """A pure-Python wheel, by hand (a wheel is a zip with three metadata files)."""
    version = "1.0"
    files = {
        f"{PACKAGE}/__init__.py": f"VALUE = {value}\n".encode(),
        f"{PACKAGE}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: marquee-probe-pkg\nVersion: {version}\n"
        ).encode(),
        f"{PACKAGE}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files[f"{PACKAGE}-{version}.dist-info/RECORD"] = (
        "\n".join([*record, f"{PACKAGE}-{version}.dist-info/RECORD,,"]) + "\n"
    ).encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{PACKAGE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def tiny_requirements(tmp_path_factory) -> tuple[Path, tuple[str, ...]]:
    folder = tmp_path_factory.mktemp("tiny-requirements")
    write_wheel(folder / "wheels")
    requirements = folder / "requirements.txt"
    requirements.write_text("marquee-probe-pkg==1.0\n")
    return requirements, ("--no-index", "--find-links", str(folder / "wheels"))


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as opened:
        return {member.name: member for member in opened.getmembers()}


def sourced(env: Path, code: str) -> str:
    """Run `code` the way Triton's stub launcher starts a stub: bash sources bin/activate,
    LD_LIBRARY_PATH gets <env>/lib; nothing else of this machine's Python on PATH."""
    script = f'source "{env}/bin/activate" && exec env LD_LIBRARY_PATH="{env}/lib" python3 -c "$0"'
    result = subprocess.run(
        ["bash", "-c", script, code], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def venv_build(tiny_requirements, tmp_path_factory, request):
    """The container's case: the environment's Python is the container's (this one, standing
    in for the image's 3.10), so a plain venv pointing at `<prefix>/bin/python<X.Y>`."""
    requirements, pip_args = tiny_requirements
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execution_env, "CONTAINER_PYTHON", THIS)
        out = tmp_path_factory.mktemp("venv-build")
        return build(out, sys.executable, [requirements], python_prefix="/usr", pip_args=pip_args)


@pytest.fixture(scope="module")
def bundled_build(tiny_requirements, tmp_path_factory):
    """Versions differ (this Python is 3.11, the container's 3.10): self-contained + stub."""
    requirements, pip_args = tiny_requirements
    assert execution_env.CONTAINER_PYTHON == (3, 10) != THIS
    out = tmp_path_factory.mktemp("bundled-build")
    return build(out, sys.executable, [requirements], pip_args=pip_args)


def test_container_python_is_310_as_the_dockerfile_checks():
    from marquee.deploy.requirements import DEPLOY_DIR

    assert execution_env.CONTAINER_PYTHON == (3, 10) and execution_env.CONTAINER_RELEASE == "24.10"
    dockerfile = (DEPLOY_DIR / "Dockerfile").read_text()
    assert "sys.version_info[:2] == (3, 10)" in dockerfile and "ARG TRITON_RELEASE=24.10" in dockerfile


def test_venv_archive_has_venv_packs_layout(venv_build):
    files = members(venv_build.archive)
    assert check_archive(venv_build.archive, THIS, "/usr") == []
    assert files["bin/activate"].isfile()
    assert files[f"bin/{NAME}"].issym() and files[f"bin/{NAME}"].linkname == f"/usr/bin/{NAME}"
    assert files["bin/python3"].linkname == NAME
    assert f"lib/{NAME}/site-packages/{PACKAGE}/__init__.py" in files
    assert not [name for name in files if "__pycache__" in name or name.startswith("/")]
    with tarfile.open(venv_build.archive, "r:gz") as opened:
        config = opened.extractfile("pyvenv.cfg").read().decode()
    assert "home = /usr/bin" in config and sys.base_prefix not in config
    # Nothing but the packed environment, and no stub when the versions match.
    assert venv_build.stub is None and not (venv_build.archive.parent / STUB_NAME).exists()
    assert len([m for m in files.values() if m.isfile()]) < 20


def test_activate_finds_the_environment_wherever_it_is_unpacked(venv_build, tmp_path):
    for place in ("a", "deeper/b"):
        target = tmp_path / place
        target.mkdir(parents=True)
        with tarfile.open(venv_build.archive, "r:gz") as opened:
            opened.extractall(target, filter="tar")
        out = subprocess.run(
            ["bash", "-c", f'source "{target}/bin/activate" && echo "$VIRTUAL_ENV" && echo "$PATH"'],
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert out[0] == str(target) and out[1].split(":")[0] == str(target / "bin")


def test_mismatched_python_gets_a_self_contained_archive_and_the_wheels_stub(bundled_build, tmp_path):
    files = members(bundled_build.archive)
    assert check_archive(bundled_build.archive, THIS, None) == []
    assert "pyvenv.cfg" not in files  # its own prefix: no `home` pointing at a missing Python
    assert files[f"bin/{NAME}"].isfile() and files[f"lib/lib{NAME}.so.1.0"].isfile()
    assert f"lib/{NAME}/os.py" in files and any(name.startswith(f"lib/{NAME}/lib-dynload/") for name in files)
    assert not [name for name in files if name.startswith(f"lib/{NAME}/test/")]
    stub = bundled_build.archive.parent / STUB_NAME
    assert stub == bundled_build.stub and stub.read_bytes() == pytriton_stub(THIS).read_bytes()
    notes = bundled_build.readme.read_text()
    assert "Never run in the NGC container" in notes and STUB_NAME in notes and "glibc 2." in notes
    # Unpacked elsewhere, started as the stub launcher starts a stub: the archive is its
    # own Python, with the package, and nothing of this host's installation on sys.path.
    with tarfile.open(bundled_build.archive, "r:gz") as opened:
        opened.extractall(tmp_path, filter="tar")
    report = sourced(
        tmp_path,
        "import sys, os, marquee_probe_pkg; print(sys.prefix); print(os.__file__); "
        "print(marquee_probe_pkg.VALUE); print(all(p.startswith(sys.prefix) for p in sys.path if p))",
    ).splitlines()
    assert report == [str(tmp_path), str(tmp_path / "lib" / NAME / "os.py"), "42", "True"]


def test_snippet_is_a_model_config_parameter_for_every_python_model(venv_build):
    snippet = (venv_build.archive.parent / SNIPPET_NAME).read_text()
    assert snippet == parameter_snippet()
    assert "Never run in the NGC container" in snippet
    assert python_models() == sorted(n for n, s in CATALOGUE.items() if s.backend == "python")
    for name in python_models():
        config = render.parse(render.render(CATALOGUE[name]) + snippet)
        value = config.parameters["EXECUTION_ENV_PATH"].string_value
        assert value == f"$$TRITON_MODEL_DIRECTORY/{ARCHIVE_NAME}"


def test_check_archive_names_what_triton_could_not_use(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    with tarfile.open(archive, "w:gz") as opened:
        link = tarfile.TarInfo(f"bin/{NAME}")
        link.type, link.linkname = tarfile.SYMTYPE, f"{sys.base_prefix}/bin/{NAME}"
        opened.addfile(link)
        escape = tarfile.TarInfo("lib/escape")
        escape.type, escape.linkname = tarfile.SYMTYPE, "../../etc"
        opened.addfile(escape)
        config = b"home = /somewhere/bin\n"
        info = tarfile.TarInfo("pyvenv.cfg")
        info.size = len(config)
        opened.addfile(info, io.BytesIO(config))
    problems = check_archive(archive, THIS, "/usr")
    assert any("bin/activate" in p for p in problems)
    assert any(f"bin/{NAME} -> {sys.base_prefix}" in p for p in problems)
    assert any("lib/escape" in p and "outside" in p for p in problems)
    assert any("pyvenv.cfg home" in p for p in problems)


def test_venv_pack_cannot_pack_a_self_contained_prefix(tiny_requirements, tmp_path):
    requirements, pip_args = tiny_requirements
    with pytest.raises(execution_env.ExecutionEnvError, match="venv-pack packs venvs"):
        build(tmp_path, sys.executable, [requirements], packer="venv-pack", pip_args=pip_args)


def test_venv_pack_writes_an_archive_that_passes_the_same_checks(tiny_requirements, tmp_path, monkeypatch):
    """venv-pack 0.2.0 from PyPI (a 16 kB wheel, installed into a throwaway venv), with the
    link workaround: without it bin/python<X.Y> would point at /usr/bin/python<X.Y><X.Y>."""
    requirements, pip_args = tiny_requirements
    monkeypatch.setattr(execution_env, "CONTAINER_PYTHON", THIS)
    packed = build(tmp_path, sys.executable, [requirements], packer="venv-pack", pip_args=pip_args)
    assert packed.packer.startswith("venv-pack")
    files = members(packed.archive)
    assert files[f"bin/{NAME}"].linkname == f"/usr/bin/{NAME}"
    assert f"lib/{NAME}/site-packages/{PACKAGE}/__init__.py" in files
    assert packed.archive.stat().st_mode & 0o044 == 0o044  # readable by the image's uid 1000
