"""The surfaces file: the shipped one loads, and each mistake names the field and what is allowed."""

from __future__ import annotations

import pytest
import yaml

from marquee.surfaces import PROJECT_SURFACES, SurfacesError, load_surfaces


def test_the_shipped_surfaces_load_with_a_known_default():
    surfaces = load_surfaces()
    assert surfaces.default in surfaces.by_name
    assert {"home", "creator_tools", "batch"} <= set(surfaces.by_name)
    assert {s.workload_class for s in surfaces.by_name.values()} == {"interactive", "background", "batch"}
    assert surfaces.get(None).name == surfaces.default


def test_an_unknown_surface_lists_the_known_ones():
    with pytest.raises(KeyError, match="surface 'tv_app' is not known; allowed: batch, creator_tools"):
        load_surfaces().get("tv_app")


def _written(tmp_path, edit) -> str:
    raw = yaml.safe_load(PROJECT_SURFACES.read_text())
    edit(raw)
    path = tmp_path / "surfaces.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw.update(default_surface="nowhere"), "`default_surface`='nowhere'; allowed:"),
        (lambda raw: raw["surfaces"]["home"].update({"class": "urgent"}), "surfaces.home.class='urgent'; allowed:"),
        (lambda raw: raw["surfaces"]["home"].update(priority=0), "surfaces.home.priority=0; must be >= 1"),
        (lambda raw: raw["surfaces"]["home"].update(quota_rps="many"), "surfaces.home.quota_rps='many'; must be"),
        (lambda raw: raw["surfaces"].update({"bad name!": raw["surfaces"]["home"]}), "allowed: letters, digits"),
        (lambda raw: raw.update(version=""), "`version`=''"),
    ],
)
def test_a_malformed_surfaces_file_names_the_field(tmp_path, edit, message):
    with pytest.raises(SurfacesError) as error:
        load_surfaces(_written(tmp_path, edit))
    assert message in str(error.value)
