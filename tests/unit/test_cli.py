from typer.testing import CliRunner

from marquee.cli import app
from marquee.specs.ranker import RANKER_FP32

runner = CliRunner()


def test_render_check_passes_on_the_committed_repository():
    result = runner.invoke(app, ["render", "--check"])
    assert result.exit_code == 0, result.output
    assert "match their specs" in result.output


def test_render_check_fails_on_a_stale_config(tmp_path):
    assert runner.invoke(app, ["render", "--repository", str(tmp_path)]).exit_code == 0
    config = tmp_path / RANKER_FP32.name / "config.pbtxt"
    config.write_text(config.read_text() + "\n# hand edit\n")
    result = runner.invoke(app, ["render", "--check", "--repository", str(tmp_path)])
    assert result.exit_code != 0
    assert "stale" in str(result.exception)


def test_export_rejects_an_unknown_precision():
    result = runner.invoke(app, ["export", "ranker", "--precision", "fp64"])
    assert result.exit_code == 2
    assert "fp64" in result.output


def test_serve_without_exported_models_says_what_to_run(tmp_path):
    runner.invoke(app, ["render", "--repository", str(tmp_path)])
    result = runner.invoke(app, ["serve", "--repository", str(tmp_path)])
    assert result.exit_code != 0
    assert "marquee export ranker" in str(result.exception)
