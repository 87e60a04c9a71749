"""Candidate generation as an ONNX graph: MatMul over every item embedding, then TopK.

A plain graph, not a Python model, so the same artifact runs under ONNX Runtime on CPU
and under TensorRT / CUDA on a GPU host. The popularity prior is baked in as a bias:
in-batch softmax training removes popularity from the towers (popular items are the
most frequent negatives), and retrieval has to add it back (the "logQ" correction).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from marquee.specs.recommend import CANDIDATES

OPSET = 17


def candidate_bias(item_popularity: np.ndarray) -> np.ndarray:
    return np.log1p(item_popularity).astype(np.float32)


def build_candidates_model(item_matrix: np.ndarray, bias: np.ndarray, temperature: float, top_k: int, path: Path):
    n_items, dim = item_matrix.shape
    if top_k > n_items:
        raise ValueError(f"top_k={top_k} exceeds the catalogue's {n_items} items")
    (ids_spec, scores_spec) = CANDIDATES.outputs
    initializers = [
        helper.make_tensor("item_matrix_t", TensorProto.FLOAT, (dim, n_items), item_matrix.T.ravel()),
        helper.make_tensor("inverse_temperature", TensorProto.FLOAT, (), [1.0 / temperature]),
        helper.make_tensor("item_bias", TensorProto.FLOAT, (n_items,), bias),
        helper.make_tensor("k", TensorProto.INT64, (1,), [top_k]),
    ]
    nodes = [
        helper.make_node("MatMul", ["user_embedding", "item_matrix_t"], ["similarity"]),
        helper.make_node("Mul", ["similarity", "inverse_temperature"], ["scaled"]),
        helper.make_node("Add", ["scaled", "item_bias"], ["scores"]),
        helper.make_node("TopK", ["scores", "k"], [scores_spec.name, ids_spec.name], axis=1, largest=1, sorted=1),
    ]
    graph = helper.make_graph(
        nodes,
        "candidates",
        [helper.make_tensor_value_info("user_embedding", TensorProto.FLOAT, ["batch_size", dim])],
        [
            helper.make_tensor_value_info(ids_spec.name, TensorProto.INT64, ["batch_size", top_k]),
            helper.make_tensor_value_info(scores_spec.name, TensorProto.FLOAT, ["batch_size", top_k]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def exact_top_k(user_vectors: np.ndarray, item_matrix: np.ndarray, bias: np.ndarray, temperature: float, k: int):
    """NumPy reference for the graph above."""
    scores = user_vectors @ item_matrix.T / temperature + bias
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(scores, top, 1)


def biased_item_vectors(item_matrix: np.ndarray, bias: np.ndarray, temperature: float) -> np.ndarray:
    """[v / t, b]: with queries [u, 1], inner products equal the exact graph's scores."""
    return np.ascontiguousarray(np.hstack([item_matrix / temperature, bias[:, None]]), dtype=np.float32)


def build_ivf_index(item_vectors: np.ndarray, path: Path, seed: int = 0) -> Path:
    """FAISS IVF-Flat over the biased item vectors, about 4 * sqrt(n) lists."""
    import faiss

    dim = item_vectors.shape[1]
    nlist = max(16, int(4 * np.sqrt(len(item_vectors))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(item_vectors)
    index.add(item_vectors)
    path.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path))
    return path


def ivf_search(path: Path, user_vectors: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.read_index(str(path))
    index.nprobe = nprobe
    queries = np.hstack([user_vectors, np.ones((len(user_vectors), 1), np.float32)]).astype(np.float32)
    scores, ids = index.search(queries, k)
    return ids, scores
