"""Find or fetch a runnable perf_analyzer, on hosts with and without glibc 2.38.

The `perf-analyzer` wheels are tagged manylinux_2_38, so on Debian 12 (glibc 2.36) pip
refuses them and the binary fails with "GLIBC_2.38 not found". There we:
1. download the wheel for the manylinux_2_38 platform and unpack the binary privately;
2. download Debian 13's libc6, libstdc++6 and libgcc-s1 with a private apt state
   (nothing is installed system-wide) and unpack them with `dpkg -x`;
3. run the binary through that release's dynamic loader with `--library-path`.
Everything lives under `<cache>/perf_analyzer/` and is reused.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from marquee.errors import PerfAnalyzerFailedError, PerfAnalyzerUnavailableError
from marquee.paths import cache_dir
from perf.results import PerfRow, parse_csv

log = logging.getLogger(__name__)

PERF_ANALYZER_VERSION = "2.60.0"
REQUIRED_GLIBC = (2, 38)
RUNTIME_SUITE = "trixie"
RUNTIME_PACKAGES = ("libc6", "libstdc++6", "libgcc-s1")
LIB_DIR = "usr/lib/x86_64-linux-gnu"


def host_glibc() -> tuple[int, int]:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # "glibc 2.36"
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@dataclass(frozen=True)
class PerfAnalyzer:
    """A runnable perf_analyzer: `command(args)` gives the argv to execute."""

    binary: Path
    loader_root: Path | None = None  # set when running through a newer glibc

    def command(self, args: list[str]) -> list[str]:
        if self.loader_root is None:
            return [str(self.binary), *args]
        libs = self.loader_root / LIB_DIR
        return [
            str(libs / "ld-linux-x86-64.so.2"),
            "--library-path",
            f"{libs}:/lib/x86_64-linux-gnu",
            str(self.binary),
            *args,
        ]

    def run(self, args: list[str], timeout_s: float = 300.0) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(args), capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise PerfAnalyzerFailedError(
                f"perf_analyzer exited with {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def measure(
        self,
        model: str,
        grpc_url: str,
        *,
        batch_size: int = 1,
        concurrency: str = "1",
        interval_ms: int = 3000,
        stability_percent: int = 25,
        max_trials: int = 15,
        extra: tuple[str, ...] = (),
        timeout_s: float = 600.0,
    ) -> list[PerfRow]:
        """One perf_analyzer run over gRPC; its CSV parsed into rows ordered by concurrency.

        Shared 2-core hosts are noisy, so the default accepts 25% window-to-window drift.
        """
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "perf_analyzer.csv"
            self.run(
                [
                    "-m",
                    model,
                    "-u",
                    grpc_url,
                    "-i",
                    "grpc",
                    "-b",
                    str(batch_size),
                    "--concurrency-range",
                    concurrency,
                    "--measurement-interval",
                    str(interval_ms),
                    "--stability-percentage",
                    str(stability_percent),
                    "--max-trials",
                    str(max_trials),
                    "-f",
                    str(csv_path),
                    *extra,
                ],
                timeout_s=timeout_s,
            )
            return sorted(parse_csv(csv_path), key=lambda row: row.concurrency)


def locate(install: bool = True) -> PerfAnalyzer:
    """A runnable perf_analyzer, fetching the wheel and glibc runtime if needed."""
    on_path = shutil.which("perf_analyzer")
    if on_path and host_glibc() >= REQUIRED_GLIBC:
        return PerfAnalyzer(Path(on_path))
    root = cache_dir() / "perf_analyzer"
    binary = root / PERF_ANALYZER_VERSION / "perf_analyzer" / "bin" / "perf_analyzer"
    if not binary.is_file():
        _require(install, "perf_analyzer binary", binary)
        _fetch_wheel(root / PERF_ANALYZER_VERSION)
    if host_glibc() >= REQUIRED_GLIBC:
        return PerfAnalyzer(binary)
    runtime = root / f"glibc-{RUNTIME_SUITE}"
    if not (runtime / LIB_DIR / "ld-linux-x86-64.so.2").is_file():
        _require(install, f"glibc runtime from Debian {RUNTIME_SUITE}", runtime)
        _fetch_runtime(runtime)
    return PerfAnalyzer(binary, runtime)


def _require(install: bool, what: str, where: Path) -> None:
    if not install:
        raise PerfAnalyzerUnavailableError(f"{what} missing at {where}; run `marquee perf setup`")


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PerfAnalyzerUnavailableError(f"{what} failed: {error}") from None
    if result.returncode != 0:
        raise PerfAnalyzerUnavailableError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{result.stderr[-2000:]}"
        )


def _fetch_wheel(target: Path) -> None:
    log.info("downloading perf-analyzer %s (manylinux_2_38 wheel)", PERF_ANALYZER_VERSION)
    download = target.parent / "wheel"
    download.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            "manylinux_2_38_x86_64",
            "--dest",
            str(download),
            f"perf-analyzer=={PERF_ANALYZER_VERSION}",
        ],
        "downloading the perf-analyzer wheel from PyPI",
    )
    wheel = next(download.glob(f"perf_analyzer-{PERF_ANALYZER_VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    (target / "perf_analyzer" / "bin" / "perf_analyzer").chmod(0o755)


def _fetch_runtime(target: Path) -> None:
    """Debian 13's loader and C/C++ runtime, unpacked privately (never installed)."""
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise PerfAnalyzerUnavailableError(
            f"host glibc {'.'.join(map(str, host_glibc()))} is older than 2.38 and this host has no apt-get/dpkg "
            "to fetch a newer runtime; run perf_analyzer on a glibc >= 2.38 host or in the Triton SDK container"
        )
    log.info("fetching %s from Debian %s into %s", ", ".join(RUNTIME_PACKAGES), RUNTIME_SUITE, target)
    state = target.parent / f"apt-{RUNTIME_SUITE}"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = state / "sources.list"
    sources.write_text(f"deb http://deb.debian.org/debian {RUNTIME_SUITE} main\n")
    options = [
        f"-oDir::Etc::SourceList={sources}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::Cache::Archives={state / 'archives'}",
        "-oAPT::Architecture=amd64",
        "-oAPT::Sandbox::User=root",
    ]
    _run(["apt-get", "-q", *options, "update"], f"apt-get update for Debian {RUNTIME_SUITE}")
    debs = state / "debs"
    debs.mkdir(exist_ok=True)
    try:
        subprocess.run(
            ["apt-get", "-q", *options, "download", *RUNTIME_PACKAGES],
            cwd=debs,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    except subprocess.CalledProcessError as error:
        raise PerfAnalyzerUnavailableError(f"apt-get download failed: {error.stderr[-2000:]}") from None
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(staging)], f"unpacking {deb.name}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
