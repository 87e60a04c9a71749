"""`candidates_ivf`: approximate top-K inner-product search with a FAISS IVF index.

The CPU twin of the exact `candidates` ONNX graph, with the same inputs and outputs, so
`retrieve_ivf` is `retrieve` with this step swapped in. The index holds the item vectors
with the popularity bias folded in as one extra dimension ([v / t, b] . [u, 1]), so its
scores equal the exact graph's scores; only the search is approximate (recall@K is
checked at export). On GPU hosts the exact ONNX graph (or GPU FAISS) is the better fit.
"""

from __future__ import annotations

import json
import os

import faiss
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        faiss.omp_set_num_threads(int(params.get("threads", "1")))
        self.index = faiss.read_index(os.path.join(version_dir, "index.faiss"))
        # nprobe was tuned at export to reach the spec's recall; a config value overrides it.
        with open(os.path.join(version_dir, "ivf.json")) as f:
            tuned = json.load(f)
        self.index.nprobe = int(params.get("nprobe") or tuned["nprobe"])
        self.top_k = next(int(o["dims"][0]) for o in config["output"] if o["name"] == "candidate_ids")

    def execute(self, requests: list) -> list:
        # One search per dynamic batch, split back per request.
        queries = [pb_utils.get_input_tensor_by_name(r, "user_embedding").as_numpy() for r in requests]
        stacked = np.concatenate(queries).astype(np.float32)
        augmented = np.hstack([stacked, np.ones((len(stacked), 1), np.float32)])
        scores, ids = self.index.search(augmented, self.top_k)
        responses, start = [], 0
        for query in queries:
            end = start + len(query)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("candidate_ids", ids[start:end].astype(np.int64)),
                        pb_utils.Tensor("candidate_scores", scores[start:end].astype(np.float32)),
                    ]
                )
            )
            start = end
        return responses
