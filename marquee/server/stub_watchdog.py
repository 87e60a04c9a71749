"""Bring a model back when one of its Python stubs dies.

Triton 2.51's Python backend does not restart a stub that exited (SIGKILL, the OOM
killer, a segfault in native code): every later request to that instance fails with
"Stub process '<instance>' is not healthy", while /v2/health/ready keeps answering 200
(triton-inference-server/server#8604: the restart the backend once had was dropped when
decoupled and non-decoupled modes were unified). Marquee's routes, its ONNX Runtime and
DALI stand-ins all run in stubs, so one dead process would take a model down for good.

How a death shows: Triton never reaps a stub that died on its own, so it stays a zombie
child of tritonserver; a stub stopped by an unload or a reload is waited for and
disappears. The watchdog polls the stubs under the server (/proc), remembers which model
each live one serves (its command line names `<repository>/<model>/<version>/...`; a
zombie's is empty), and when one turns zombie it reloads that model through the
repository API (explicit model control; the admin key) with its own config as an
override, which starts fresh stubs before dropping the old instances.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from marquee.server.security import AdminKey

log = logging.getLogger(__name__)

STUB_COMMAND = "triton_python_"  # /proc/<pid>/comm is cut at 15 characters
RESTART_PARAMETER = "marquee_stub_restarts"


def process_parents() -> dict[int, int]:
    """PID -> parent PID of every process, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


@dataclass(frozen=True)
class StubProcess:
    pid: int
    model: str | None  # None for a zombie: its command line is gone
    alive: bool


def stub_processes(server_pid: int) -> dict[int, StubProcess]:
    """The Python stubs under `server_pid`, live and dead (zombies)."""
    found = {}
    for pid, parent in process_parents().items():
        if parent != server_pid:
            continue
        try:
            if not Path(f"/proc/{pid}/comm").read_text().startswith(STUB_COMMAND):
                continue
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        alive = state != "Z"
        model = Path(argv[1].decode(errors="replace")).parent.parent.name if alive and len(argv) > 1 else None
        found[pid] = StubProcess(pid, model, alive)
    return found


class StubWatchdog:
    def __init__(self, server_pid: int, http_url: str, admin_key: AdminKey, interval_s: float = 0.5):
        self.server_pid = server_pid
        self.http_url = http_url
        self.admin_key = admin_key
        self.interval_s = interval_s
        self.reloads: Counter = Counter()  # model -> reloads done
        self._model_of: dict[int, str] = {}  # stub PID -> model, learnt while it was alive
        self._buried: set[int] = set()  # zombies already acted on (Triton never reaps them)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stub-watchdog", daemon=True)

    def start(self) -> StubWatchdog:
        self.poll()  # learn the stubs of a server that just became ready
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not Path(f"/proc/{self.server_pid}").exists():
                return
            try:
                self.poll()
            except (OSError, urllib.error.URLError, ValueError) as error:  # the server going away, mostly
                log.warning("stub watchdog: poll failed: %s", error)

    def poll(self) -> list[str]:
        """One look; returns the models it reloaded."""
        dead: Counter = Counter()
        for stub in stub_processes(self.server_pid).values():
            if stub.alive:
                self._model_of[stub.pid] = stub.model
            elif stub.pid not in self._buried:
                self._buried.add(stub.pid)
                model = self._model_of.pop(stub.pid, None)
                if model is None:
                    log.warning("stub watchdog: stub %d died before it was seen alive; its model is unknown", stub.pid)
                    continue
                dead[model] += 1
        if not dead:
            return []
        ready = self._ready_models()
        reloaded = [model for model in dead if model in ready]  # one being unloaded stays unloaded
        for model in reloaded:
            self._reload(model, dead[model])
        if reloaded:
            self.poll()  # learn the new stubs at once: one killed before the next poll is still known
        return reloaded

    def _ready_models(self) -> set[str]:
        request = urllib.request.Request(
            f"http://{self.http_url}/v2/repository/index", data=b"{}", headers=self.admin_key.http_headers()
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            index = json.loads(reply.read())
        return {entry["name"] for entry in index if entry.get("state") == "READY"}

    def _reload(self, model: str, dead: int) -> None:
        """Load the model with its own config as an override: a plain load of a model whose
        files did not change is a no-op in Triton, while a load with a changed config builds
        new instances (and stubs) before it drops the old ones."""
        log.warning("stub watchdog: %d stub(s) of %s died; reloading the model", dead, model)
        with urllib.request.urlopen(f"http://{self.http_url}/v2/models/{model}/config", timeout=10) as reply:
            config = json.loads(reply.read())
        # A load whose override equals the config in force is a no-op too, so each reload
        # carries its own count (models ignore parameters they do not read).
        config.setdefault("parameters", {})[RESTART_PARAMETER] = {"string_value": str(self.reloads[model] + 1)}
        request = urllib.request.Request(
            f"http://{self.http_url}/v2/repository/models/{model}/load",
            data=json.dumps({"parameters": {"config": json.dumps(config)}}).encode(),
            headers=self.admin_key.http_headers(),
        )
        with urllib.request.urlopen(request, timeout=300) as reply:
            reply.read()
        self.reloads[model] += 1
        log.warning("stub watchdog: %s reloaded (%d reload(s) so far)", model, self.reloads[model])
