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
import sys

import faiss
import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from route_runtime import RouteParameters  # noqa: E402 - needs the path above


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = RouteParameters.from_args(args)
        faiss.omp_set_num_threads(params.integer("threads", 1, minimum=1))
        self.index = faiss.read_index(os.path.join(params.folder, "index.faiss"))
        # nprobe was tuned at export to reach the spec's recall; a config value overrides it.
        with open(os.path.join(params.folder, "ivf.json")) as f:
            tuned = json.load(f)
        self.index.nprobe = params.integer("nprobe", int(tuned["nprobe"]), minimum=1)
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
