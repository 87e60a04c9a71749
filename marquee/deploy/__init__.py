"""Deployment artifacts rendered from the specs: Kubernetes manifests (`k8s.py`) and the
checks behind the container build's requirement files (`deploy/`).

Nothing in this package has run on a cluster or in a container: no Kubernetes cluster,
Docker engine or GPU was available where it was written. What can be checked offline is
checked by tests/unit/test_deploy_k8s.py (schemas, structure, drift).
"""
