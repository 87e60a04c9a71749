"""`marquee deploy ...`: render (or verify) the Kubernetes manifests.

    marquee deploy render --committed              # deploy/k8s/ngc-gpu and ngc-cpu, as committed
    marquee deploy render --committed --check      # exit 1 if they are stale (CI)
    marquee deploy render --target ngc-gpu --out k8s/ --image REGISTRY/marquee-triton:0.1.0 \\
        --model-repository s3://bucket/marquee --worker-image REGISTRY/marquee-worker:0.1.0

The main CLI mounts `deploy_app` (`app.add_typer(deploy_app, name="deploy")`); it also
runs standalone: `python -m marquee.deploy.cli render --committed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marquee.console import console

deploy_app = typer.Typer(help="Kubernetes manifests rendered from the specs.", no_args_is_help=True)


@deploy_app.callback()
def _group() -> None:
    """Kubernetes manifests rendered from the specs (never applied to a cluster by the project)."""


def _check_committed() -> None:
    from marquee.deploy.k8s import stale_committed

    drifted = stale_committed()
    if drifted:
        for path in drifted:
            console.print(f"[red]✗[/] stale: {path}")
        console.print("run `marquee deploy render --committed`")
        raise typer.Exit(1)
    console.print("[green]✓[/] deploy/k8s is current")


@deploy_app.command("render")
def render(
    committed: Annotated[
        bool, typer.Option(help="The committed folders under deploy/k8s/ (ngc-gpu, ngc-cpu).")
    ] = False,
    check: Annotated[bool, typer.Option(help="Only verify; exit 1 when files differ from a fresh render.")] = False,
    target: Annotated[str | None, typer.Option(help="ngc-gpu or ngc-cpu.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder to write (its old manifests are replaced).")] = None,
    image: Annotated[str | None, typer.Option(help="Triton image built from deploy/Dockerfile.")] = None,
    model_repository: Annotated[
        str, typer.Option(help="s3://, gs://, as://, pvc://claim/path, or file:///models (inside the image).")
    ] = "file:///models",
    worker_image: Annotated[str | None, typer.Option(help="Worker image built from deploy/worker.Dockerfile.")] = None,
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "marquee",
    grpc_tls_secret: Annotated[
        str | None, typer.Option(help="kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt): gRPC over TLS.")
    ] = None,
    prometheus_url: Annotated[str | None, typer.Option(help="Prometheus for KEDA and prometheus-adapter.")] = None,
) -> None:
    """Write the manifests for a target (or check them)."""
    from marquee.deploy import k8s
    from marquee.errors import MarqueeError

    if committed:
        if check:
            _check_committed()
            return
        written = k8s.render_committed()
        console.print(f"[green]✓[/] wrote {len(written)} files under {k8s.K8S_ROOT}")
        return
    if target is None or out is None or image is None:
        raise typer.BadParameter("give --committed, or --target, --out and --image")
    options = {
        "worker_image": worker_image or k8s.DEFAULT_WORKER_IMAGE,
        "namespace": namespace,
        "grpc_tls_secret": grpc_tls_secret,
        "prometheus_url": prometheus_url,
    }
    try:
        if check:
            drifted = k8s.stale(target, out, image, model_repository, **options)
            for path in drifted:
                console.print(f"[red]✗[/] stale: {path}")
            if drifted:
                raise typer.Exit(1)
            console.print(f"[green]✓[/] {out} is current")
            return
        written = k8s.render_manifests(target, out, image, model_repository, **options)
    except MarqueeError as error:
        console.print(f"[red]✗[/] {error}")
        raise typer.Exit(1) from None
    console.print(f"[green]✓[/] wrote {len(written)} files under {out}")


@deploy_app.command("gateway")
def gateway(
    check: Annotated[bool, typer.Option(help="Only verify; exit 1 when the file differs from a fresh render.")] = False,
    out: Annotated[Path | None, typer.Option(help="Where to write (default: deploy/gateway/nginx.conf).")] = None,
    listen_host: Annotated[str, typer.Option(help="Address the gateway listens on.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="The gateway's HTTP port.")] = 8080,
    grpc_port: Annotated[int, typer.Option(help="The gateway's gRPC port.")] = 8081,
    triton_http: Annotated[str, typer.Option(help="Triton's HTTP endpoint, host:port.")] = "127.0.0.1:8000",
    triton_grpc: Annotated[str, typer.Option(help="Triton's gRPC endpoint, host:port.")] = "127.0.0.1:8001",
) -> None:
    """The per-surface quota gateway (nginx) in front of Triton, from policies/surfaces.yaml."""
    from marquee.deploy.gateway import COMMITTED, GatewayAddresses, render_nginx
    from marquee.surfaces import load_surfaces

    target = out or COMMITTED
    text = render_nginx(load_surfaces(), GatewayAddresses(listen_host, http_port, grpc_port, triton_http, triton_grpc))
    if check:
        if not target.is_file() or target.read_text() != text:
            console.print(f"[red]✗[/] stale: {target}; run `marquee deploy gateway`")
            raise typer.Exit(1)
        console.print(f"[green]✓[/] {target} is current")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    console.print(f"[green]✓[/] wrote {target}")


if __name__ == "__main__":
    deploy_app()


@deploy_app.command("assemble")
def assemble(
    target: Annotated[str, typer.Option(help="Deployment target: ngc-cpu, ngc-gpu or embedded-cpu.")],
    out: Annotated[Path, typer.Option(help="New folder for the complete repository.")],
    source: Annotated[
        Path | None, typer.Option(help="Repository with the exported models [default: ./model_repository].")
    ] = None,
) -> None:
    """A complete repository for one target: its configs plus the exported version folders."""
    from marquee.deploy.assemble import assemble_repository
    from marquee.deploy.errors import DeployError
    from marquee.paths import model_repository
    from marquee.specs import CATALOGUE
    from marquee.targets import get_target

    try:
        chosen = get_target(target)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--target") from None
    try:
        folder = assemble_repository(list(CATALOGUE.values()), chosen, source or model_repository(), out)
    except DeployError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    console.print(f"[green]✓[/] {chosen.name} repository with {len(CATALOGUE)} models at {folder}")
