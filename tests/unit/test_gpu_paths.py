"""GPU checks. They run only where onnxruntime-gpu sees a CUDA device; CPU hosts skip them."""

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def test_fp32_ranker_on_cuda_execution_provider_matches_cpu(exported_repository):
    import onnxruntime as ort

    path = str(exported_repository / "ranker_fp32" / "1" / "model.onnx")
    feeds = {
        "categorical": np.random.default_rng(0).integers(0, 8, (256, 6)).astype(np.int64),
        "dense": np.random.default_rng(1).standard_normal((256, 6)).astype(np.float32),
    }
    cpu = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    cuda_session = ort.InferenceSession(path, providers=["CUDAExecutionProvider"])
    assert cuda_session.get_providers()[0] == "CUDAExecutionProvider"
    np.testing.assert_allclose(cuda_session.run(None, feeds)[0], cpu, atol=1e-4)
