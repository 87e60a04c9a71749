"""The hermetic load test: the NGC CPU repository on the embedded tritonserver, with only
the declared route requirements installed. The nearest thing to the NGC container that
runs here (README "Deployment").

- Python environment: a fresh venv made from this interpreter (the stub embeds its
  Python) holding deploy/requirements-python-backends.txt, i.e. requirements-routes.txt
  plus what the embedded server's Python-based `onnxruntime`/`dali` backends import, and
  nothing else: no pip, no torch, no Marquee. Built once per content of those files into
  .marquee/hermetic-env/<hash>/ (about 35 s) and reused. tritonserver runs with it
  (`TritonServer(python_env=...)`): its bin/ first on PATH, the project's venv off PATH,
  no PYTHONPATH. The tests read every stub's memory map, environment and sys.path to prove
  that is what the Python models ran in.
- Model repository: every model of the catalogue with its config from
  `render(spec, NGC_CPU)` and the version folders the session fixtures exported (copied,
  hard links where possible), each model in a root of its own, passed as one
  `--model-repository` per model. A model that reads a sibling's folder, or a path of
  where it was exported, finds nothing.
- Every model READY; every route answers a real request; Triton's own statistics show
  that every model, composed ones included, executed.

The last test loads a model through Triton's EXECUTION_ENV_PATH with the archive
`marquee.deploy.execution_env` packs, of a Python other than the server's stub (3.10 on
this 3.11 server, as a 3.11 archive would be on the 3.10 image), with the wheel's stub
for that version in the model's folder: Triton's own loader, not the container.

What still differs from the container: Python 3.11 (the image: 3.10), the Python-based
stand-ins instead of the native ONNX Runtime and DALI backends (so nvidia-dali is in the
environment), onnxruntime 1.23.2 in-process, no GPU.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from marquee import render
from marquee.deploy import execution_env
from marquee.deploy.execution_env import build_venv, interpreter
from marquee.deploy.requirements import BACKENDS_FILE, PROJECT_ROOT, ROUTES_FILE
from marquee.server import TritonServer, free_ports
from marquee.server.embedded import STUB_NAME, pytriton_root
from marquee.server.process import log_tail
from marquee.specs import CATALOGUE, DataType, LatencyBudget, ModelSpec, Precision, TensorSpec, Tolerance
from marquee.specs.ranker import RANKER_FP32, RANKER_INT8
from marquee.specs.recommend import SETTINGS
from marquee.specs.whisper import BASE, INT8_MAX_WER_DELTA, TINY_EN
from marquee.targets import NGC_CPU
from marquee.transcription.wer import word_error_rate
from tests.fixtures_moderation_text import moderate
from tests.fixtures_video import clip_path
from tests.fixtures_whisper import BASE_CACHE, transcribe

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERMETIC_ROOT = PROJECT_ROOT / ".marquee" / "hermetic-env"
COMPLETE = ".marquee-complete"
# Packages the project's venv has and the routes must not need: any of them importable in
# a stub means the environment leaked.
NOT_DECLARED = ("torch", "marquee", "export", "clients", "tritonclient", "transformers", "pytest", "pip")
# Whisper tiny.en on espeak-ng's voice, as tests/integration/test_transcribe_route.py bounds it.
MAX_WER = 0.3
SPOKEN = "The weather today is sunny with a light breeze from the west. Please remember your passport."
CAPTION = "FREE CRYPTO GIVEAWAY"

# A test-only model in a root of its own: reports the interpreter the Python models get.
PROBE = ModelSpec(
    name="hermetic_probe",
    family="test",
    precision=Precision.FP32,
    backend="python",
    artifact="model.py",
    inputs=(TensorSpec("ping", DataType.INT32, (1,)),),
    outputs=(TensorSpec("report", DataType.BYTES, (1,)),),
    max_batch_size=0,
    dynamic_batching=None,
    tolerance=Tolerance(atol=0.0),
    budget=LatencyBudget(perf_latency_p99_us=100_000),
)
_PROBE_CODE = """
import importlib.util
import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

NOT_DECLARED = {not_declared!r}


class TritonPythonModel:
    def execute(self, requests):
        report = {{
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "path": sys.path,
            "cwd": os.getcwd(),
            "importable": {{name: importlib.util.find_spec(name) is not None for name in NOT_DECLARED}},
            "numpy": np.__file__,
            "version": list(sys.version_info[:2]),
        }}
        payload = np.array([json.dumps(report).encode()], dtype=np.object_)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("report", payload)]) for _ in requests]
"""


# -- the environment ----------------------------------------------------------------------


def _env_key() -> str:
    digest = hashlib.sha256()
    for path in (ROUTES_FILE, BACKENDS_FILE):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(sys.version.encode() + sys.base_prefix.encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def hermetic_env() -> Path:
    """A venv holding only the deploy/ requirement files, reused while they are unchanged."""
    env = HERMETIC_ROOT / _env_key()
    if (env / COMPLETE).is_file():
        return env
    shutil.rmtree(env, ignore_errors=True)  # an interrupted build
    env.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    build_venv(interpreter(sys.executable), [BACKENDS_FILE], env)
    (env / COMPLETE).write_text(f"built in {time.monotonic() - started:.0f} s from {BACKENDS_FILE.name}\n")
    for stale in HERMETIC_ROOT.iterdir():  # environments of older requirement files
        if stale != env and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return env


# -- the repository -----------------------------------------------------------------------


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _exported_version(spec: ModelSpec, sources: list[Path]) -> Path:
    for repository in sources:
        version = repository / spec.name / str(spec.version)
        if version.is_dir() and any(version.iterdir()):
            return version
    raise AssertionError(f"{spec.name}: no session fixture exported it (looked in {[str(s) for s in sources]})")


@pytest.fixture(scope="module")
def exports(
    route_repository, text_moderation_repository, image_moderation_repository, whisper_repository, video_repository
):
    """The session fixtures' repositories, where the catalogue's models were exported
    (Whisper base, both precisions, in the cache `whisper_repository` links its INT8 from)."""
    return [
        route_repository,
        text_moderation_repository,
        image_moderation_repository,
        whisper_repository,
        BASE_CACHE,
        video_repository,
    ]


@pytest.fixture(scope="module")
def ngc_cpu_roots(exports, tmp_path_factory) -> list[Path]:
    """One model repository root per model: NGC CPU configs, exported version folders."""
    base = tmp_path_factory.mktemp("ngc-cpu-moved")
    roots = []
    for index, spec in enumerate(sorted(CATALOGUE.values(), key=lambda s: s.name)):
        root = base / f"root-{index:02d}"
        render.write([spec], root, NGC_CPU)
        version = root / spec.name / str(spec.version)
        if spec.backend == "ensemble":
            version.mkdir()
        else:
            shutil.copytree(
                _exported_version(spec, exports),
                version,
                copy_function=_link_or_copy,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        roots.append(root)
    probe_root = base / "root-probe"
    render.write([PROBE], probe_root, NGC_CPU)
    (probe_root / PROBE.name / "1").mkdir()
    (probe_root / PROBE.name / "1" / "model.py").write_text(_PROBE_CODE.format(not_declared=NOT_DECLARED))
    return [*roots, probe_root]


@pytest.fixture(scope="module")
def hermetic_triton(hermetic_env, ngc_cpu_roots, tmp_path_factory):
    first, *others = ngc_cpu_roots
    log_path = tmp_path_factory.mktemp("hermetic-triton-log") / "tritonserver.log"
    server = TritonServer(
        first,
        free_ports(),
        log_path=log_path,
        extra_args=tuple(f"--model-repository={root}" for root in others),
        python_env=hermetic_env,
    )
    started = time.monotonic()
    server.start(timeout=900)
    print(f"hermetic NGC-CPU server: {len(ngc_cpu_roots)} roots READY in {time.monotonic() - started:.0f} s")
    yield server
    server.stop()


@pytest.fixture
def alive(hermetic_triton):
    yield hermetic_triton
    if not hermetic_triton.alive():
        pytest.fail(f"tritonserver died during the test; log:\n{log_tail(hermetic_triton.log_path)}")


# -- one real request per route -------------------------------------------------------------


def _recommend(server) -> dict:
    from clients.recommend import RecommendClient
    from marquee.serving import warm_up_recommend

    warm_up_recommend(server.grpc_url)
    pages = []
    with RecommendClient(server.grpc_url, timeout_s=30) as client:
        for user in range(20):
            pages.append(client.recommend(100 + user, region=user % 8, history=(1, 2, 3), n=10, device=1, hour=20))
            if not pages[-1].degraded:
                break
    return {"pages": pages}


def _retrieve(server) -> dict:
    """`retrieve` (exact search) serves no route on the CPU target; call it and its IVF twin."""
    history = np.full((1, SETTINGS.tower_history), -1, np.int64)
    history[0, :3] = (1, 2, 3)
    feeds = {"user_id": np.array([[7]], np.int64), "region": np.array([[2]], np.int64), "history": history}
    found = {}
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        for model in ("retrieve", "retrieve_ivf"):
            inputs = []
            for name, value in feeds.items():
                tensor = grpcclient.InferInput(name, list(value.shape), "INT64")
                tensor.set_data_from_numpy(value)
                inputs.append(tensor)
            found[model] = client.infer(model, inputs, client_timeout=30).as_numpy("candidate_ids")[0]
    return found


def _ranker(server, ngc_cpu_roots) -> dict:
    from clients.ranker import RankerClient
    from marquee.sample import sample_page

    categorical, dense = sample_page(seed=3)
    served = {}
    for precision in ("fp32", "int8"):
        with RankerClient(server.grpc_url, precision=precision, timeout_s=30) as client:
            served[precision] = client.score(categorical, dense)
    moved = next(root / RANKER_FP32.name for root in ngc_cpu_roots if (root / RANKER_FP32.name).is_dir())
    session = ort.InferenceSession(str(moved / "1" / RANKER_FP32.artifact), providers=["CPUExecutionProvider"])
    (reference,) = session.run(["probability"], {"categorical": categorical, "dense": dense})
    return {"served": served, "reference": reference[:, 0]}


def _moderate_text(server) -> dict:
    texts = ["what a lovely episode, thanks for uploading", "nobody wants to read your worthless opinions"]
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        return {p: moderate(client, texts, classifier_precision=p) for p in ("int8", "fp32")}


def _moderate_image(server) -> dict:
    from export.moderation_image import synthetic

    images = [synthetic.encode(synthetic.caption_image(CAPTION)), synthetic.encode(synthetic.blobs_image(480, 640, 1))]
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        tensor = grpcclient.InferInput("image", [len(images)], "BYTES")
        tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
        result = client.infer("moderate_image", [tensor], client_timeout=120)
        # The pipeline a route with OCR off decodes through (not the default), called directly.
        encoded = {"image": np.frombuffer(images[1], np.uint8)[None]}
        full, detector_only = (
            _infer(client, model, encoded, ["detector_input"])["detector_input"]
            for model in ("image_preprocess", "image_preprocess_detector")
        )
    return {
        "decisions": [d.decode() for d in result.as_numpy("decision")],
        "audits": [json.loads(a) for a in result.as_numpy("audit")],
        "detector_inputs": (full, detector_only),
    }


def _analyze_video(server, clip: Path) -> dict:
    """The route (TransNetV2 INT8, the tagger, MTCNN, the real image and text routes) on a
    generated H.264 clip; TransNetV2 FP32 (which the CPU route does not call) directly, and
    MTCNN's R- and O-Net, which the route reaches only when a test pattern looks like a face."""
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        tensor = grpcclient.InferInput("video", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([clip.read_bytes()], dtype=np.object_))
        result = json.loads(client.infer("analyze_video", [tensor], client_timeout=600).as_numpy("result")[0])
        windows = np.zeros((1, 100, 27, 48, 3), np.uint8)
        fp32 = _infer(client, "transnetv2_fp32", {"frames": windows}, ["single_frame"])["single_frame"]
        for model, side in (("mtcnn_rnet_fp32", 24), ("mtcnn_onet_fp32", 48)):
            _infer(client, model, {"pixels": np.full((1, side, side, 3), 128.0, np.float32)}, ["probability"])
    return {"result": result, "fp32_shape": list(fp32.shape)}


def _transcribe(server, clip: bytes) -> dict:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        routes = ("transcribe", "transcribe_int8", "transcribe_base", "transcribe_base_int8")
        return {route: transcribe(client, [clip], model=route)[0] for route in routes}


def _infer(client, model: str, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    from tritonclient.utils import np_to_triton_dtype

    inputs = []
    for name, value in feeds.items():
        tensor = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
    result = client.infer(model, inputs, outputs=requested, client_timeout=120)
    return {name: result.as_numpy(name) for name in outputs}


# Each Whisper variant's decoders with the dims and first token of the checkpoint.
DECODED_VARIANTS = (("whisper", TINY_EN, 50257), ("whisper_base", BASE, 50258))


def _whisper_decoders(server, clip: bytes, roots: list[Path]) -> dict:
    """The served decoders (the routes run their own in-process copy, so no route calls
    them): one step on the clip's real encoder output, served and run here on the moved
    file, for every variant and precision. {decoder model: (served, local, dims)}"""
    steps = {}
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        mel = _infer(client, "audio_features", {"audio": np.frombuffer(clip, np.uint8)[None]}, ["mel"])["mel"]
        features = np.full((1, 80, 3000), mel.min(), np.float32)
        features[:, :, : min(3000, mel.shape[2])] = mel[:, :, :3000]
        for prefix, dims, first_token in DECODED_VARIANTS:
            layers = range(dims.n_layers)
            cross = [f"cross_{kind}_{layer}" for layer in layers for kind in ("k", "v")]
            for precision in ("fp32", "int8"):
                encoded = _infer(client, f"{prefix}_encoder_{precision}", {"input_features": features}, cross)
                feeds = {"input_ids": np.array([[first_token, first_token + 1]], np.int64), **encoded}
                for name in (f"past_{kind}_{layer}" for layer in layers for kind in ("k", "v")):
                    feeds[name] = np.zeros((1, dims.n_heads, 1, dims.head_dim), np.float32)
                model = f"{prefix}_decoder_{precision}"
                served = _infer(client, model, feeds, ["logits"])["logits"]
                moved = next(root / model for root in roots if (root / model).is_dir())
                session = ort.InferenceSession(str(moved / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
                (local, *_) = session.run(["logits"], feeds)
                steps[model] = (served, local, dims)
    return steps


def _probe(server) -> dict:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        tensor = grpcclient.InferInput("ping", [1], "INT32")
        tensor.set_data_from_numpy(np.array([1], np.int32))
        return json.loads(client.infer(PROBE.name, [tensor]).as_numpy("report")[0])


@pytest.fixture(scope="module")
def answers(hermetic_triton, ngc_cpu_roots, espeak_clips, video_test_set) -> dict:
    """Every route's answer (or the exception it raised), sent once for the module."""
    clip = espeak_clips.get(SPOKEN).wav
    calls = {
        "ranker": lambda: _ranker(hermetic_triton, ngc_cpu_roots),
        "recommend": lambda: _recommend(hermetic_triton),
        "retrieve": lambda: _retrieve(hermetic_triton),
        "moderate_text": lambda: _moderate_text(hermetic_triton),
        "moderate_image": lambda: _moderate_image(hermetic_triton),
        "transcribe": lambda: _transcribe(hermetic_triton, clip),
        "whisper_decoders": lambda: _whisper_decoders(hermetic_triton, clip, ngc_cpu_roots),
        "analyze_video": lambda: _analyze_video(hermetic_triton, clip_path(video_test_set, "h264")),
        "probe": lambda: _probe(hermetic_triton),
    }
    results = {}
    for name, call in calls.items():
        try:
            results[name] = call()
        except Exception as error:  # noqa: BLE001 - each test re-raises its own route's failure
            results[name] = error
    return results


def _answer(answers: dict, name: str):
    result = answers[name]
    if isinstance(result, Exception):
        raise AssertionError(f"{name} did not answer: {result!r}") from result
    return result


# -- the tests ------------------------------------------------------------------------------


def test_every_model_of_the_ngc_cpu_repository_is_ready_from_its_own_root(alive, ngc_cpu_roots):
    client = httpclient.InferenceServerClient(alive.http_url)
    index = client.get_model_repository_index(headers=alive.admin_key.http_headers())
    states = {entry["name"]: entry.get("state") for entry in index}
    assert states == {name: "READY" for name in [*CATALOGUE, PROBE.name]}, states
    for root in ngc_cpu_roots:
        (model,) = [path.name for path in root.iterdir()]
        assert client.is_model_ready(model)
        # The NGC CPU configs, unchanged: what the container would load.
        config = (root / model / "config.pbtxt").read_text()
        if model in CATALOGUE:
            assert config == render.render(CATALOGUE[model], NGC_CPU)


def test_moved_repository_names_no_path_of_the_exports(ngc_cpu_roots, exports):
    """Nothing in the moved version folders points back at where the models were exported."""
    old = [str(path.resolve()).encode() for path in exports]
    suffixes = {".pbtxt", ".json", ".txt", ".yaml", ".yml", ".py", ".cfg"}
    checked = 0
    for root in ngc_cpu_roots:
        for path in root.rglob("*"):
            if path.is_file() and path.suffix in suffixes:
                data = path.read_bytes()
                assert not [o for o in old if o in data], f"{path} names an export location"
                checked += 1
    assert checked > len(CATALOGUE)


def test_stubs_load_packages_from_the_hermetic_environment_only(alive, hermetic_env):
    stubs = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            exe = os.readlink(proc / "exe")
            if ppid == alive.process.pid and exe.endswith(STUB_NAME):
                stubs.append(((proc / "maps").read_text(), (proc / "environ").read_bytes()))
        except (OSError, ValueError):
            continue
    instances = sum(
        group.count
        for spec in [*CATALOGUE.values(), PROBE]
        if spec.backend != "ensemble"
        for group in NGC_CPU.deploy(spec).instance_groups
    )
    assert len(stubs) == instances, f"{len(stubs)} stub processes; the configs ask for {instances} instances"
    env_prefix = str(hermetic_env.resolve()) + "/"
    # The server's own libraries (Triton and the stub's runtime, the container's /opt/tritonserver).
    server_files = tuple(str(path) + "/" for path in (pytriton_root(), pytriton_root().parent / "nvidia_pytriton.libs"))
    native = set()
    for maps, environ in stubs:
        mapped = {line.split()[-1] for line in maps.splitlines() if "/site-packages/" in line}
        outside = sorted(path for path in mapped if not path.startswith((env_prefix, *server_files)))
        assert outside == [], f"a stub mapped files from outside the hermetic environment: {outside[:5]}"
        native |= {path.split("/site-packages/")[1].split("/")[0] for path in mapped}
        variables = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        assert variables[b"PATH"].decode().split(os.pathsep)[0] == str(hermetic_env.resolve() / "bin")
        assert b"PYTHONPATH" not in variables and b"VIRTUAL_ENV" not in variables
    # The routes' and backends' compiled packages, all from the hermetic environment.
    assert {"numpy", "onnxruntime", "faiss", "cv2", "tokenizers", "nvidia"} <= native, sorted(native)


def test_python_models_run_in_the_hermetic_interpreter(answers, hermetic_env):
    report = _answer(answers, "probe")
    assert Path(report["prefix"]).resolve() == hermetic_env.resolve()
    assert Path(report["numpy"]).resolve().is_relative_to(hermetic_env.resolve())
    site = [entry for entry in report["path"] if "site-packages" in entry]
    assert site and all(Path(entry).resolve().is_relative_to(hermetic_env.resolve()) for entry in site), site
    assert report["importable"] == {name: False for name in NOT_DECLARED}
    # The stub puts its working directory on sys.path: not the project's root.
    assert not Path(report["cwd"]).resolve().is_relative_to(PROJECT_ROOT)


def test_rankers_answer_with_the_exported_models_scores(answers):
    result = _answer(answers, "ranker")
    reference = result["reference"]
    assert np.abs(result["served"]["fp32"] - reference).max() <= RANKER_FP32.tolerance.atol
    assert np.abs(result["served"]["int8"] - reference).max() <= RANKER_INT8.tolerance.atol
    assert np.all((result["served"]["int8"] > 0) & (result["served"]["int8"] < 1))


def test_recommend_answers_a_ranked_page(answers):
    pages = _answer(answers, "recommend")["pages"]
    assert all(len(page.items) == 10 and len(set(page.item_ids)) == 10 for page in pages)
    ranked = [page for page in pages if not page.degraded]
    assert ranked, f"every page degraded: {[page.degraded_reason for page in pages]}"


def test_exact_and_ivf_retrieval_agree(answers):
    found = _answer(answers, "retrieve")
    exact, approximate = found["retrieve"], found["retrieve_ivf"]
    assert len(exact) == SETTINGS.top_k and np.all(exact >= 0)
    recall = len(set(exact[:100].tolist()) & set(approximate.tolist())) / 100
    assert recall >= 0.9


def test_moderate_text_answers_through_both_classifiers(answers):
    for precision, (decisions, audits) in _answer(answers, "moderate_text").items():
        assert decisions[0] == "allow", (precision, audits[0])
        assert decisions[1] in ("review", "block"), (precision, audits[1])
        assert all(len(audit["stages"]) == 2 for audit in audits), (precision, audits)


def test_moderate_image_reads_the_caption_and_the_real_text_route_judges_it(answers):
    result = _answer(answers, "moderate_image")
    caption, blobs = result["audits"]
    lines = [" ".join(line["text"].split()).upper() for line in caption["ocr"]["lines"]]
    assert CAPTION in lines, lines
    assert caption["ocr"]["text_judged"] is True and caption["ocr"]["text_audits"]
    assert set(result["decisions"]) <= {"allow", "review", "block"}, result
    assert {"image_preprocess", "nudenet_320n", "ocr_det_ppocrv4", "ocr_rec_ppocrv4"} <= set(blobs["models"])
    full, detector_only = result["detector_inputs"]
    assert full.shape == detector_only.shape == (1, 3, 320, 320)
    np.testing.assert_array_equal(detector_only, full)


def test_analyze_video_answers_with_shots_tags_and_judged_keyframes(answers):
    answer = _answer(answers, "analyze_video")
    result = answer["result"]
    assert "error" not in result, result
    assert result["video"]["decoder"] == "pyav" and len(result["shots"]) >= 5
    assert all(shot["keyframe"]["moderation"] in ("allow", "review", "block") for shot in result["shots"])
    assert all(shot["keyframe"]["tags"] is not None for shot in result["shots"])
    assert answer["fp32_shape"] == [1, 100]


def test_transcribe_routes_answer_with_the_spoken_words(answers):
    results = _answer(answers, "transcribe")
    texts = {route: " ".join(segment["text"] for segment in result["segments"]) for route, result in results.items()}
    fp32 = word_error_rate(SPOKEN, texts["transcribe"]).wer
    int8 = word_error_rate(SPOKEN, texts["transcribe_int8"]).wer
    assert fp32 <= MAX_WER, texts
    # On one sentence a flipped word is 1/16 of the WER: INT8 gets its documented delta
    # (measured on ~500 words) plus one word.
    assert int8 <= max(MAX_WER, fp32 + INT8_MAX_WER_DELTA + 1 / 16), texts
    for route in ("transcribe_base", "transcribe_base_int8"):  # multilingual: says which language it heard
        assert results[route]["language"] == "en", results[route]
        assert word_error_rate(SPOKEN, texts[route]).wer <= MAX_WER, texts


def test_served_whisper_decoders_step_like_their_files(answers):
    steps = _answer(answers, "whisper_decoders")
    assert len(steps) == 2 * len(DECODED_VARIANTS)
    for model, (served, local, dims) in steps.items():
        assert served.shape == local.shape == (1, dims.n_vocab), model
        assert np.abs(served - local).max() <= 1e-2 * max(1.0, np.abs(local).max()), model
        assert served.argmax() == local.argmax(), model


def test_triton_statistics_show_every_model_executed(answers, alive):
    assert not [name for name, result in answers.items() if isinstance(result, Exception)]
    stats = httpclient.InferenceServerClient(alive.http_url).get_inference_statistics()
    executed = {entry["name"]: int(entry["inference_stats"]["success"]["count"]) for entry in stats["model_stats"]}
    idle = sorted(name for name in CATALOGUE if executed.get(name, 0) == 0)
    assert idle == [], f"models that never ran a request: {idle}"


# -- the packed execution environment through Triton's loader --------------------------------


def _python_310() -> str | None:
    candidates = [
        shutil.which("python3.10"),
        *sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.10*/bin/python3.10"))),
    ]
    for candidate in [c for c in candidates if c] + ["/usr/bin/python3.10"]:
        try:
            if interpreter(candidate).version == (3, 10):
                return candidate
        except Exception:  # noqa: BLE001 - a shim that refuses, a missing file
            continue
    return None


def test_packed_environment_of_another_python_loads_through_execution_env_path(tmp_path, monkeypatch):
    python = _python_310()
    if python is None:
        pytest.skip("no Python 3.10 interpreter on this host to pack an environment of another version")
    # The embedded server plays the container: its stub embeds this Python (3.11), the
    # archive holds 3.10, as a 3.11 archive would on the 3.10 image.
    monkeypatch.setattr(execution_env, "CONTAINER_PYTHON", sys.version_info[:2])
    numpy_pin = next(line.split()[0] for line in ROUTES_FILE.read_text().splitlines() if line.startswith("numpy=="))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(numpy_pin + "\n")  # the stub's triton_python_backend_utils imports numpy
    packed = execution_env.build(tmp_path / "packed", python, [requirements])
    assert packed.stub is not None and packed.python.version == (3, 10)

    probe = dataclasses.replace(PROBE, name="packed_env_probe")
    repository = tmp_path / "repository"
    render.write([probe], repository, NGC_CPU)
    model_dir = repository / probe.name
    with (model_dir / "config.pbtxt").open("a") as config:
        config.write(packed.snippet.read_text())
    shutil.copy2(packed.archive, model_dir / packed.archive.name)
    shutil.copy2(packed.stub, model_dir / execution_env.STUB_NAME)
    (model_dir / "1").mkdir()
    (model_dir / "1" / "model.py").write_text(_PROBE_CODE.format(not_declared=NOT_DECLARED))

    with TritonServer(repository, free_ports(), log_path=tmp_path / "tritonserver.log") as server:
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            tensor = grpcclient.InferInput("ping", [1], "INT32")
            tensor.set_data_from_numpy(np.array([1], np.int32))
            report = json.loads(client.infer(probe.name, [tensor]).as_numpy("report")[0])
    # Triton extracted the archive (under /tmp/python_env_*), sourced its bin/activate and
    # started the 3.10 stub from the model's folder; numpy came from the archive.
    assert report["version"] == [3, 10]
    assert Path(report["prefix"]).parent.name.startswith("python_env_"), report["prefix"]
    assert Path(report["numpy"]).is_relative_to(report["prefix"])
    assert not any("site-packages" in entry and not entry.startswith(report["prefix"]) for entry in report["path"])
