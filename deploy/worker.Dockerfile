# The moderation queue worker: `marquee moderation worker` with only what it imports.
# NEVER BUILT HERE: the machines this was written on have no Docker engine.
#
#   docker build -f deploy/worker.Dockerfile -t <registry>/marquee-worker:0.1.0 .
FROM python:3.11-slim

COPY deploy/requirements-worker.txt /opt/marquee/requirements-worker.txt
RUN python3 -m pip install --no-cache-dir -r /opt/marquee/requirements-worker.txt

# Marquee itself without its dependencies (torch, DALI, ... are export and server tools).
COPY pyproject.toml README.md /opt/marquee/src/
COPY marquee /opt/marquee/src/marquee
COPY clients /opt/marquee/src/clients
RUN python3 -m pip install --no-cache-dir --no-deps /opt/marquee/src && rm -rf /opt/marquee/src

USER 65532
ENTRYPOINT ["marquee"]
CMD ["moderation", "worker", "--help"]
