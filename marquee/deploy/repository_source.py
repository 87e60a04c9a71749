"""Where a pod's model repository comes from: object storage, a volume, or the image.

One URI parameter picks it, so the same manifests serve every layout:
- `s3://bucket/path`, `gs://bucket/path`, `as://account/container/path`: Triton reads the
  cloud store itself (`--model-repository=<uri>`). Credentials come from the optional
  Secret `marquee-model-storage` as environment variables (AWS_ACCESS_KEY_ID, ...), or
  from the node's / service account's identity when that Secret does not exist.
- `pvc://<claim>/<path>`: a PersistentVolumeClaim mounted read-only.
- `file:///<path>`: a path inside the image (deploy/Dockerfile copies the repository to
  /models).
KServe accepts the first two as `storageUri` and downloads them into /mnt/models; an
image path needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from marquee.deploy.errors import DeployError

OBJECT_STORES = ("s3", "gs", "as")
STORAGE_SECRET = "marquee-model-storage"
PVC_MOUNT = "/model-repository"
KSERVE_MOUNT = "/mnt/models"  # where KServe's storage initializer puts `storageUri`
IMAGE_REPOSITORY = "file:///models"  # deploy/Dockerfile copies the repository here


@dataclass(frozen=True)
class RepositorySource:
    uri: str
    scheme: str
    claim: str | None = None
    subpath: str = ""

    @property
    def server_path(self) -> str:
        """What `--model-repository` gets in a plain Deployment."""
        if self.scheme in OBJECT_STORES:
            return self.uri
        if self.scheme == "pvc":
            return f"{PVC_MOUNT}/{self.subpath}".rstrip("/")
        return self.subpath  # file: an absolute path inside the image

    @property
    def kserve_storage_uri(self) -> str | None:
        return None if self.scheme == "file" else self.uri

    @property
    def kserve_server_path(self) -> str:
        return KSERVE_MOUNT if self.kserve_storage_uri else self.subpath

    def volumes(self) -> list[dict]:
        if self.scheme != "pvc":
            return []
        return [{"name": "model-repository", "persistentVolumeClaim": {"claimName": self.claim, "readOnly": True}}]

    def volume_mounts(self) -> list[dict]:
        if self.scheme != "pvc":
            return []
        return [{"name": "model-repository", "mountPath": PVC_MOUNT, "readOnly": True}]

    def env_from(self) -> list[dict]:
        """Object-store credentials, if the user created the Secret (optional: pods start
        without it and then use the node's or the service account's identity)."""
        if self.scheme not in OBJECT_STORES:
            return []
        return [{"secretRef": {"name": STORAGE_SECRET, "optional": True}}]


def parse_repository_uri(uri: str) -> RepositorySource:
    parts = urlsplit(uri)
    allowed = "s3://bucket/path, gs://bucket/path, as://account/container/path, pvc://claim/path, file:///path"
    if parts.scheme in OBJECT_STORES and parts.netloc:
        return RepositorySource(uri=uri, scheme=parts.scheme)
    if parts.scheme == "pvc" and parts.netloc:
        return RepositorySource(uri=uri, scheme="pvc", claim=parts.netloc, subpath=parts.path.strip("/"))
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/") and len(parts.path) > 1:
        return RepositorySource(uri=uri, scheme="file", subpath=parts.path.rstrip("/"))
    raise DeployError(f"model repository `{uri}` is not supported; allowed: {allowed}")
