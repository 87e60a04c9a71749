#!/usr/bin/env bash
# Set up Marquee on a fresh Linux machine: a virtual environment in .venv with the
# project installed, plus the one system library the embedded server may lack.
#   ./bootstrap.sh          runtime (export, serve, clients)
#   ./bootstrap.sh --test   runtime + test tools + perf_analyzer (used by the tests)
#   ./bootstrap.sh --perf   runtime + perf_analyzer + plotting for the benchmark scripts
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
extras=()
with_perf=0
for arg in "$@"; do
  case "$arg" in
    --test) extras+=(test); with_perf=1 ;;
    --perf) extras+=(perf); with_perf=1 ;;
    *) echo "unknown option: $arg (allowed: --test, --perf)" >&2; exit 2 ;;
  esac
done

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Marquee needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi

# Triton's Python backend stub embeds libpython3.X.so.1.0. Interpreters built with
# --enable-shared (pyenv, Debian's) ship it; Debian's python3 needs package libpython3.X.
libdir=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
if [ ! -e "$libdir/libpython$pyver.so.1.0" ] && ! ldconfig -p | grep -q "libpython$pyver.so.1.0"; then
  echo "installing libpython$pyver (needed by Triton's Python backend stub)"
  if [ "$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q "libpython$pyver"
  else sudo apt-get update -q && sudo apt-get install -y -q "libpython$pyver"; fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip

# torch==2.13.0 must be the CPU build. Use a local wheel if pip is configured with one
# (find-links), otherwise PyTorch's CPU index; plain PyPI would pull a multi-GB CUDA build.
pip_args=()
find_links=$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)
if ! ls ${find_links:-/nonexistent}/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  pip_args+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
spec="."
if [ ${#extras[@]} -gt 0 ]; then spec=".[$(IFS=,; echo "${extras[*]}")]"; fi
.venv/bin/python -m pip install --quiet "${pip_args[@]}" -e "$spec"
# Only PP-OCRv4's ONNX files are used from this package; its own dependencies would pull
# opencv-python (numpy 2, libGL) over the headless build.
.venv/bin/python -m pip install --quiet --no-deps "rapidocr-onnxruntime==1.4.4"
.venv/bin/python -c "import marquee, torch, onnxruntime, tritonclient, pytriton" || {
  echo "installation incomplete; see pip's output above" >&2; exit 1; }

if [ "$with_perf" = 1 ]; then
  .venv/bin/marquee perf setup
fi

# Tests need two Debian packages: redis-server (the Redis Streams queue is tested against
# a real server) and espeak-ng (synthesised speech for transcription).
apt_install() {
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q "$@" || { apt-get update -q && apt-get install -y -q "$@"; }
  else sudo apt-get install -y -q "$@" || { sudo apt-get update -q && sudo apt-get install -y -q "$@"; }; fi
}
if [[ " ${extras[*]-} " == *" test "* ]]; then
  missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  if [ ${#missing[@]} -gt 0 ]; then echo "installing ${missing[*]} (used by the tests)"; apt_install "${missing[@]}"; fi
fi
echo "Marquee is installed in .venv"
