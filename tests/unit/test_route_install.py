"""The route installer: modules, data files, and the files operators own after install."""

from __future__ import annotations

from export.route_install import install_route
from marquee.moderation.policy_rollout import HISTORY
from marquee.routes import manifest


def _install(version_dir, policy_text: str) -> None:
    data = {"policy.yaml": policy_text}
    install_route(manifest.MODERATE_TEXT, version_dir, {"input_hash": "test"}, data, {"policy.yaml": HISTORY})


def test_a_reexport_replaces_the_policy_until_an_operator_manages_it(tmp_path):
    version_dir = tmp_path / "moderate_text" / "1"
    _install(version_dir, "version: project-1\n")
    assert (version_dir / "policy.yaml").read_text() == "version: project-1\n"
    assert {"model.py", "live_policy.py", "policy.py", "route_runtime.py"} <= {p.name for p in version_dir.iterdir()}

    _install(version_dir, "version: project-2\n")  # no operator history yet: the project's edit lands
    assert (version_dir / "policy.yaml").read_text() == "version: project-2\n"

    (version_dir / "policy.yaml").write_text("version: promoted-by-operator\n")
    (version_dir / HISTORY).write_text('{"action": "promote"}\n')
    _install(version_dir, "version: project-3\n")
    assert (version_dir / "policy.yaml").read_text() == "version: promoted-by-operator\n"


def test_a_reexport_removes_modules_the_manifest_no_longer_lists(tmp_path):
    version_dir = tmp_path / "moderate_text" / "1"
    _install(version_dir, "version: project-1\n")
    (version_dir / "moved_away.py").write_text("raise ImportError('stale')\n")  # an earlier release's module
    _install(version_dir, "version: project-1\n")
    assert not (version_dir / "moved_away.py").exists()
    assert {"model.py", "live_policy.py", "policy.py", "route_runtime.py"} <= {p.name for p in version_dir.iterdir()}
