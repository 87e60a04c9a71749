import pytest
from typer.testing import CliRunner

from marquee.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_rank_prints_a_ranked_page(triton, precision):
    result = runner.invoke(app, ["rank", "--url", triton.grpc_url, "--precision", precision])
    assert result.exit_code == 0, result.output
    assert f"ranker_{precision}: user" in result.output
    assert "p(click)" in result.output


def test_models_lists_ready_models_with_their_tensors(triton):
    result = runner.invoke(app, ["models", "--url", triton.http_url])
    assert result.exit_code == 0, result.output
    assert "ranker_int8" in result.output and "READY" in result.output
    assert "categorical" in result.output and "INT64" in result.output


def test_serve_url_describes_an_external_server(triton):
    result = runner.invoke(app, ["serve", "--url", triton.http_url])
    assert result.exit_code == 0, result.output
    assert "ranker_fp32" in result.output
