"""TritonServer.start against stand-in executables that crash the way tritonserver does.

What is checked is the start logic (one retry on the Python backend's load race, none on
any other crash), so the executable is a shell script: a real tritonserver cannot be made
to hit that race on demand."""

from pathlib import Path

import pytest

from marquee.errors import ServerError
from marquee.server.process import TritonServer, free_ports


class _ScriptedServer(TritonServer):
    """A TritonServer whose 'tritonserver' is a shell script that counts its launches."""

    def __init__(self, tmp_path: Path, script: str):
        super().__init__(tmp_path / "repository", free_ports(), log_path=tmp_path / "logs" / "tritonserver.log")
        self.launches = tmp_path / "launches"
        self.script = script

    def command(self, backend_dir: Path) -> list[str]:
        return ["bash", "-c", f"echo launch >> {self.launches}; {self.script}"]


LOAD_RACE = (
    "echo 'I1203 model_lifecycle.cc:839] \"successfully loaded analyze_video\"'; "
    "echo \"terminate called after throwing an instance of 'boost::interprocess::lock_exception'\"; "
    "exit 134"
)


def test_the_python_backend_load_race_is_retried_once_and_its_first_log_kept(tmp_path):
    server = _ScriptedServer(tmp_path, LOAD_RACE)
    with pytest.raises(ServerError, match="lock_exception"):
        server.start(timeout=30)
    assert server.launches.read_text().splitlines() == ["launch", "launch"]
    crashed = server.log_path.with_suffix(".crashed.log")
    assert "lock_exception" in crashed.read_text()
    assert "lock_exception" in server.log_path.read_text()


def test_any_other_crash_before_ready_is_reported_at_once(tmp_path):
    server = _ScriptedServer(tmp_path, "echo 'E server.cc] failed to load all models'; exit 1")
    with pytest.raises(ServerError, match="(?s)exited with code 1 before becoming ready.*failed to load all models"):
        server.start(timeout=30)
    assert server.launches.read_text().splitlines() == ["launch"]
    assert not server.log_path.with_suffix(".crashed.log").exists()
