"""The client layer on its own: `pip install` of Marquee with no extras, into a fresh
virtual environment, then every route called from there against real tritonservers.

The core install is numpy and tritonclient (pyproject.toml); everything else is an extra.
The virtual environment is made from a copy of the sources (pip builds in the source
tree; the working tree stays clean), and the calls run with `python -I` from a folder
outside the checkout, so they import the installed copy and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# What `pip install .` needs: the metadata and the packages setuptools finds.
SOURCES = ("pyproject.toml", "README.md", "marquee", "export", "clients", "perf")
# What a client-only install must not have (import names).
HEAVY = ("torch", "nvidia.dali", "faiss", "transformers", "onnxruntime", "pytriton")
CORE_DISTRIBUTIONS = {"numpy", "tritonclient"}
PIP_TIMEOUT_S = 600

# Run by the fresh venv's interpreter: argv[1] is a JSON file with the servers' URLs and
# the request payloads; it prints one JSON object with what every route answered.
CALL_EVERY_ROUTE = r"""
import asyncio
import importlib.util
import json
import sys

import numpy as np

from clients import AsyncRecommendClient, RankerClient, RecommendClient
from clients.moderation import ModerationClient
from clients.transcription import TranscriptionClient

args = json.load(open(sys.argv[1]))
heavy = args["heavy"]


def findable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package (nvidia) is missing
        return False


def loaded(name):
    return [m for m in sys.modules if m == name or m.startswith(name + ".")]


out = {"clients_file": __import__("clients").__file__, "imported_before": {h: loaded(h) for h in heavy}}
categorical = np.zeros((4, 6), np.int64)
dense = np.zeros((4, 6), np.float32)
ranker = {}
for precision in ("fp32", "int8"):
    with RankerClient(args["ranker_grpc"], precision=precision, timeout_s=30) as client:
        ranker[f"{precision}/grpc"] = client.score(categorical, dense).tolist()
with RankerClient(args["ranker_http"], protocol="http", timeout_s=30) as client:
    ranker["fp32/http"] = client.score(categorical, dense).tolist()
out["ranker"] = ranker

with RecommendClient(args["ranker_grpc"], timeout_s=30) as client:
    page = client.recommend(7, 2, [10, 11], n=5)
out["recommend"] = {"items": page.item_ids, "degraded": page.degraded}


async def recommend_async():
    async with AsyncRecommendClient(args["ranker_http"], protocol="http", timeout_s=30) as client:
        return (await client.recommend(7, 2, [10, 11], n=5)).item_ids


out["recommend_async_http"] = asyncio.run(recommend_async())

with ModerationClient(args["text_grpc"], timeout_s=60) as client:
    out["moderate_text"] = [r.decision for r in client.moderate_text(args["texts"])]
with ModerationClient(args["image_grpc"], timeout_s=120) as client:
    image = open(args["image"], "rb").read()
    out["moderate_image"] = [(r.decision, r.error) for r in client.moderate_images([image])]

transcripts = {}
for route in ("transcribe", "transcribe_int8"):
    with TranscriptionClient(args["transcribe_grpc"], model=route, timeout_s=300) as client:
        transcript = client.transcript(args["audio"])
        transcripts[route] = {"text": transcript.text, "duration_s": transcript.duration_s}
out["transcribe"] = transcripts

out["imported_after"] = {h: loaded(h) for h in heavy}
out["findable"] = {h: findable(h) for h in heavy}
print(json.dumps(out))
"""


def _copy_sources(destination: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    destination.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)
    return destination


def _clean_env() -> dict[str, str]:
    """This process's environment without what points at the project's own venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def _run(command: list[str], timeout: float, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_clean_env())
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh venv holding Marquee with no extras; returns its interpreter."""
    base = tmp_path_factory.mktemp("client-layer")
    sources = _copy_sources(base / "marquee-src")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120, cwd=base)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", str(sources)], timeout=PIP_TIMEOUT_S, cwd=base)
    return python


def _in_venv(python: Path, code: str, cwd: Path) -> str:
    return _run([str(python), "-I", "-c", code], timeout=120, cwd=cwd).stdout


def test_the_core_install_is_numpy_and_tritonclient(client_venv, tmp_path):
    requires = json.loads(
        _in_venv(
            client_venv,
            "import json; from importlib import metadata; "
            "print(json.dumps([r for r in metadata.requires('marquee') if 'extra ==' not in r]))",
            tmp_path,
        )
    )
    names = {r.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip() for r in requires}
    assert names == CORE_DISTRIBUTIONS, requires


def test_the_client_layer_has_no_heavy_packages(client_venv, tmp_path):
    code = (
        "import importlib.util, json, sys\n"
        "import clients, clients.moderation, clients.transcription, marquee.specs, marquee.errors\n"
        f"heavy = {list(HEAVY)!r}\n"
        "def findable(n):\n"
        "    try:\n"
        "        return importlib.util.find_spec(n) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        "print(json.dumps({'findable': [h for h in heavy if findable(h)],"
        " 'loaded': [m for m in sys.modules if m.split('.')[0] in {h.split('.')[0] for h in heavy}]}))\n"
    )
    report = json.loads(_in_venv(client_venv, code, tmp_path))
    assert report == {"findable": [], "loaded": []}


def test_the_marquee_command_names_the_extra_it_lacks(client_venv, tmp_path):
    result = subprocess.run(
        [str(client_venv.parent / "marquee"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert result.returncode == 1
    assert "marquee[cli]" in result.stderr and "client layer only" in result.stderr, result.stderr


def _payloads(tmp_path: Path, espeak_clips) -> dict[str, str]:
    from export.moderation_image import synthetic

    image = tmp_path / "plain.jpg"
    image.write_bytes(synthetic.encode(synthetic.plain_image(480, 640, 1)))
    audio = tmp_path / "speech.wav"
    audio.write_bytes(espeak_clips.get("The client layer calls every route.").wav)
    return {"image": str(image), "audio": str(audio)}


def test_a_client_only_venv_calls_every_route(
    client_venv, tmp_path, triton, text_triton, image_triton, transcribe_triton, espeak_clips
):
    args = {
        "heavy": list(HEAVY),
        "ranker_grpc": triton.grpc_url,
        "ranker_http": triton.http_url,
        "text_grpc": text_triton.grpc_url,
        "image_grpc": image_triton.grpc_url,
        "transcribe_grpc": transcribe_triton.grpc_url,
        "texts": ["what a lovely film", "you are a stupid idiot"],
        **_payloads(tmp_path, espeak_clips),
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    (tmp_path / "call_every_route.py").write_text(CALL_EVERY_ROUTE)
    command = [str(client_venv), "-I", str(tmp_path / "call_every_route.py"), str(tmp_path / "args.json")]
    out = json.loads(_run(command, timeout=900, cwd=tmp_path).stdout.strip().splitlines()[-1])

    assert Path(out["clients_file"]).is_relative_to(client_venv.parent.parent), out["clients_file"]
    for key, probabilities in out["ranker"].items():
        assert len(probabilities) == 4 and all(0.0 <= p <= 1.0 for p in probabilities), key
    assert len(out["recommend"]["items"]) == 5 and len(out["recommend_async_http"]) == 5
    assert len(out["moderate_text"]) == 2 and set(out["moderate_text"]) <= {"allow", "review", "block"}
    assert out["moderate_image"] == [["allow", None]]
    for route, transcript in out["transcribe"].items():
        assert transcript["duration_s"] > 0 and len(transcript["text"].split()) >= 3, (route, transcript)
    empty = {name: [] for name in HEAVY}
    assert out["imported_before"] == empty and out["imported_after"] == empty
    assert out["findable"] == dict.fromkeys(HEAVY, False)
