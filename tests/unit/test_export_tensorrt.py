"""TensorRT plans: which models get one, and a clear word when this host cannot build them."""

from __future__ import annotations

import shutil

import pytest

from export.tensorrt import missing_prerequisites, plannable
from marquee.specs import CATALOGUE


def test_plans_are_for_onnx_models_with_fixed_dims_only():
    chosen = {name for name, spec in CATALOGUE.items() if plannable(spec)}
    assert {"ranker_fp32", "ranker_int8", "user_tower", "candidates", "nudenet_320n"} <= chosen
    # Dynamic sequence or image sizes, Python routes, DALI and ensembles get none.
    assert not chosen & {"text_classifier_fp32", "recommend", "image_preprocess", "retrieve", "candidates_ivf"}


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host may have a GPU")
def test_a_cpu_host_is_told_what_it_lacks():
    missing = missing_prerequisites()
    assert any("CUDA GPU" in item for item in missing), missing
