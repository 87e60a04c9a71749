"""`marquee` command line. Each command parses arguments and calls a library function;
heavy libraries (torch, onnxruntime) are imported inside the commands that need them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from marquee.console import configure_logging, console
from marquee.deploy.cli import deploy_app
from marquee.errors import MarqueeError
from marquee.moderation.cli import moderate, moderation_app, quarantine_app
from marquee.rollout.cli import rollout_app
from marquee.top.cli import top_command
from marquee.transcription.cli import transcribe
from marquee.video.cli import video_app

app = typer.Typer(help="Marquee: media AI on NVIDIA Triton Inference Server.", no_args_is_help=True)


def _export_for_target(_result, target: str = "embedded-cpu", **_) -> None:
    """After an export for ngc-gpu: TensorRT plans where this host can build them, and a
    clear word on what is missing where it cannot (the ONNX + TensorRT EP path needs none)."""
    if target != "ngc-gpu":
        return
    from export.tensorrt import build_plans, missing_prerequisites
    from marquee.paths import model_repository
    from marquee.specs import CATALOGUE

    missing = missing_prerequisites()
    if missing:
        console.print(
            "[yellow]ngc-gpu: TensorRT plans not built; this host lacks " + " and ".join(missing) + ".[/]\n"
            "  The ngc-gpu repository does not need them: its ONNX models carry ONNX Runtime's TensorRT EP, which\n"
            "  builds engines when Triton loads them. To prebuild plans, run this on the GPU host."
        )
        return
    for plan in build_plans(list(CATALOGUE.values()), model_repository()):
        console.print(f"[green]✓[/] TensorRT plan {plan}")


export_app = typer.Typer(
    help="Export models into the model repository.", no_args_is_help=True, result_callback=_export_for_target
)
perf_app = typer.Typer(help="Measure served models.", no_args_is_help=True)
app.add_typer(export_app, name="export")
app.add_typer(perf_app, name="perf")
app.add_typer(moderation_app, name="moderation")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(deploy_app, name="deploy")
app.add_typer(rollout_app, name="rollout")
app.add_typer(video_app, name="video")
app.command("moderate")(moderate)
app.command("transcribe")(transcribe)
app.command("top")(top_command)

RepositoryOption = Annotated[
    Path | None, typer.Option("--repository", "-r", help="Model repository (default: ./model_repository).")
]


class PrecisionChoice(StrEnum):
    fp32 = "fp32"
    int8 = "int8"


class ProtocolChoice(StrEnum):
    grpc = "grpc"
    http = "http"


def _repository(path: Path | None) -> Path:
    from marquee.paths import model_repository

    return (path or model_repository()).resolve()


AddressOption = Annotated[
    str,
    typer.Option(help="Address HTTP, gRPC and metrics bind. 127.0.0.1: this machine only; 0.0.0.0: every interface."),
]
AdminKeyFileOption = Annotated[
    Path | None,
    typer.Option(
        help="File holding the admin key for the restricted APIs "
        "(default: $MARQUEE_ADMIN_KEY, else .marquee/admin.key, generated with mode 0600)."
    ),
]


def _bind_address(address: str) -> str:
    from marquee.server.security import check_bind_address

    try:
        return check_bind_address(address)
    except ValueError as error:
        raise typer.BadParameter(f"--address: {error}") from None


def _grpc_tls(cert: Path | None, key: Path | None):
    from marquee.server import GrpcTls

    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("--grpc-tls-cert", "--grpc-tls-key") if key is None else ("--grpc-tls-key", "--grpc-tls-cert")
        raise typer.BadParameter(f"{given} needs {missing} too: TLS takes a certificate and its private key")
    return GrpcTls(cert, key)


def _describe_external(url: str, admin_key_file: Path | None) -> None:
    """Print the models of a server Marquee did not start; its repository index needs the key."""
    from marquee import serving
    from marquee.server import resolve_admin_key

    serving.require_ready(url)
    console.print(serving.models_table(url, resolve_admin_key(admin_key_file, create=False)))


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    configure_logging(verbose)


@app.command()
def render(
    check: Annotated[bool, typer.Option("--check", help="Fail if a committed config.pbtxt is stale.")] = False,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Repeatable; default: every target (embedded-cpu with --repository)."),
    ] = None,
    repository: RepositoryOption = None,
) -> None:
    """Render every model's config.pbtxt from its spec, per deployment target (or check them).

    Targets: embedded-cpu -> model_repository/, ngc-cpu and ngc-gpu -> deploy/model_repository/<target>/."""
    from marquee import render as rendering
    from marquee.errors import ConfigDriftError
    from marquee.repository_check import check_repository
    from marquee.specs import CATALOGUE
    from marquee.targets import TARGETS, get_target
    from perf import budgets

    default_targets = ["embedded-cpu"] if repository else list(TARGETS)
    try:
        targets = [get_target(name) for name in (target or default_targets)]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--target") from None
    if repository and len(targets) != 1:
        raise typer.BadParameter("--repository needs exactly one --target", param_hint="--repository")
    specs = list(CATALOGUE.values())
    for chosen in targets:
        # The embedded target's repository honours MARQUEE_MODEL_REPOSITORY, as serving does.
        folder = _repository(repository) if repository or chosen.embedded else chosen.repository
        if check:
            rendering.check(specs, folder, chosen)
            problems = check_repository(specs, folder, chosen)
            if problems:
                raise ConfigDriftError(f"{chosen.name}: {len(problems)} structural problem(s):\n" + "\n".join(problems))
            console.print(
                f"[green]✓ {chosen.name}: {len(specs)} configs match their specs and load-check clean[/] ({folder})"
            )
        else:
            written = rendering.write(specs, folder, chosen)
            console.print(f"wrote {len(written)} {chosen.name} configs under {folder}")
    if check:
        if budgets.budgets_stale(specs):
            raise ConfigDriftError(f"{budgets.BUDGETS_YAML} is stale; run `marquee render`")
        console.print("[green]✓ perf/budgets.yaml matches the specs")
    else:
        console.print(f"wrote {budgets.write_budgets(specs)}")
    _render_observability(check)


def _render_observability(check: bool) -> None:
    """The Prometheus rules and Grafana dashboards hold the specs' budgets and routes too."""
    from marquee.errors import ConfigDriftError
    from marquee.observability import dashboards, rules

    for name, module in (("Prometheus rules", rules), ("Grafana dashboards", dashboards)):
        if check:
            drifted = module.stale()
            if drifted:
                raise ConfigDriftError(f"{name} are stale: {', '.join(map(str, drifted))}; run `marquee render`")
            console.print(f"[green]✓ {name} match the specs")
        else:
            console.print(f"wrote {len(module.write())} {name} files")


@export_app.callback()
def export_group(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Option("--target", "-t", help="Deployment target the export is for: embedded-cpu, ngc-cpu, ngc-gpu.")
    ] = "embedded-cpu",
) -> None:
    """Export models into the model repository (the same files serve every target)."""
    from marquee.targets import get_target

    try:
        ctx.obj = get_target(target)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--target") from None


@export_app.command("ranker")
def export_ranker(
    checkpoint: Annotated[Path | None, typer.Option(help="Ranker checkpoint; default: train the seeded one.")] = None,
    precision: Annotated[
        list[PrecisionChoice] | None, typer.Option("--precision", "-p", help="Repeatable; default: fp32 and int8.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Export even when inputs are unchanged.")] = False,
    repository: RepositoryOption = None,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            min=1,
            help="Model version folder to add (default: the one in service); load it with `marquee rollout start`.",
        ),
    ] = None,
) -> None:
    """Train (or load) the DCN-v2 ranker, export FP32/INT8 ONNX, validate, install."""
    from export.ranker.pipeline import export_ranker as run_export
    from marquee.progress import progress_bar
    from marquee.specs.base import Precision

    precisions = tuple(Precision(p.value) for p in (precision or list(PrecisionChoice)))
    with progress_bar() as progress:
        results = run_export(
            _repository(repository), precisions, checkpoint, force=force, progress=progress, version=version
        )
    for result in results:
        state = "unchanged, skipped" if result.skipped else "exported and validated"
        console.print(f"[green]✓[/] {result.spec.name}: {state} -> {result.path}")


@export_app.command("recommend")
def export_recommend(
    n_items: Annotated[int, typer.Option(min=1000, help="Catalogue size.")] = 100_000,
    force: Annotated[bool, typer.Option(help="Export even when inputs are unchanged.")] = False,
    repository: RepositoryOption = None,
) -> None:
    """Build the catalogue, train the two towers, export user_tower, candidates and the route."""
    from export.recommend.pipeline import export_recommend as run_export
    from marquee.progress import progress_bar

    with progress_bar() as progress:
        exported = run_export(_repository(repository), n_items=n_items, force=force, progress=progress)
    state = "exported and validated" if exported else "unchanged, skipped"
    console.print(f"[green]✓[/] recommend route ({n_items:,} items): {state}")


@export_app.command("moderation")
def export_moderation(
    force: Annotated[bool, typer.Option(help="Export even when inputs are unchanged.")] = False,
    repository: RepositoryOption = None,
) -> None:
    """Text cascade (lexical + MiniLM FP32/INT8) and image route (DALI, NudeNet, PP-OCRv4)."""
    from export.moderation.text_pipeline import export_text_moderation
    from export.moderation_image.pipeline import export_image_moderation

    repo = _repository(repository)
    for name, run_export in (("moderate_text", export_text_moderation), ("moderate_image", export_image_moderation)):
        with console.status(f"exporting {name} and its models"):
            exported = run_export(repo, force=force)
        state = "exported and validated" if exported else "unchanged, skipped"
        console.print(f"[green]✓[/] {name} route: {state}")


@export_app.command("transcription")
def export_transcription(
    source: Annotated[
        Path | None,
        typer.Option(help="Whisper checkpoint: a CTranslate2 or transformers directory (default: tiny.en)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Export even when inputs are unchanged.")] = False,
    repository: RepositoryOption = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="tiny.en (English, fast; what `marquee up` serves) or base (multilingual: transcribe_base routes).",
        ),
    ] = "tiny.en",
) -> None:
    """DALI log-mel preprocessing, Silero VAD and Whisper (encoder, cached decoder; FP32, INT8) with the routes."""
    from export.audio.pipeline import export_audio_features
    from export.vad import export_silero_vad
    from export.whisper.pipeline import export_whisper
    from marquee.specs.whisper import VARIANTS

    if model not in VARIANTS:
        raise typer.BadParameter(f"--model {model!r}; allowed: {', '.join(VARIANTS)}")
    variant = VARIANTS[model]
    repo = _repository(repository)
    with console.status("exporting audio_features (DALI log-mel)"):
        exported = export_audio_features(repo, force=force)
    console.print(f"[green]✓[/] audio_features: {'exported and validated' if exported else 'unchanged, skipped'}")
    with console.status("exporting silero_vad (from faster-whisper)"):
        exported = export_silero_vad(repo, force=force)
    console.print(f"[green]✓[/] silero_vad: {'exported and validated' if exported else 'unchanged, skipped'}")
    routes = f"{variant.route_fp32.name}, {variant.route_int8.name}"
    with console.status(f"exporting Whisper {variant.label} encoder/decoder (FP32, INT8) and {routes}"):
        exported = export_whisper(repo, source=source, force=force, variant=variant)
    console.print(f"[green]✓[/] {routes}: {'exported and validated' if exported else 'unchanged, skipped'}")


@export_app.command("vision")
def export_vision(
    force: Annotated[bool, typer.Option(help="Export even when inputs are unchanged.")] = False,
    repository: RepositoryOption = None,
) -> None:
    """TransNetV2 shot boundaries (FP32, INT8) and the analyze_video route (needs `export moderation`)."""
    from export.vision.pipeline import export_vision as run_export

    with console.status("exporting TransNetV2 (FP32, INT8) and the analyze_video route"):
        exported = run_export(_repository(repository), force=force)
    console.print(f"[green]✓[/] analyze_video route: {'exported and validated' if exported else 'unchanged, skipped'}")


@app.command()
def serve(
    repository: RepositoryOption = None,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    log_file: Annotated[Path | None, typer.Option(help="Server log [default: .marquee/logs/tritonserver.log].")] = None,
    url: Annotated[str | None, typer.Option(help="Use an external server (host:http_port) instead.")] = None,
    address: AddressOption = "127.0.0.1",
    admin_key_file: AdminKeyFileOption = None,
    grpc_tls_cert: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="PEM certificate (chain): serve gRPC over TLS.")
    ] = None,
    grpc_tls_key: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="PEM private key of --grpc-tls-cert.")
    ] = None,
) -> None:
    """Serve the model repository on the embedded tritonserver until Ctrl-C."""
    from marquee import serving
    from marquee.server import ServerPorts, resolve_admin_key

    if url:
        _describe_external(url, admin_key_file)
        return
    bind, tls = _bind_address(address), _grpc_tls(grpc_tls_cert, grpc_tls_key)
    ports = ServerPorts(http_port, grpc_port, metrics_port)
    server = serving.start_embedded(
        _repository(repository),
        ports,
        log_file or serving.default_log_path(),
        address=bind,
        admin_key=resolve_admin_key(admin_key_file, create=True),
        grpc_tls=tls,
    )
    console.print(serving.models_table(server.http_url, server.admin_key))
    console.print(serving.endpoints_table(server))
    console.print(f"server log: {server.log_path}. Ctrl-C stops the server.")
    serving.wait_until_signalled(server)


@app.command()
def models(
    url: Annotated[str, typer.Option(help="Server HTTP address.")] = "localhost:8000",
    admin_key_file: Annotated[
        Path | None,
        typer.Option(help="Admin key file (default: $MARQUEE_ADMIN_KEY, else .marquee/admin.key if present)."),
    ] = None,
) -> None:
    """List the models a running server knows, with states and tensors."""
    _describe_external(url, admin_key_file)


@app.command()
def rank(
    url: Annotated[str | None, typer.Option(help="Server address; default localhost:8001 (gRPC).")] = None,
    protocol: ProtocolChoice = ProtocolChoice.grpc,
    precision: PrecisionChoice = PrecisionChoice.fp32,
    seed: int = 0,
) -> None:
    """Send a sample page of candidates to the ranker and print them ranked."""
    from clients.ranker import RankerClient
    from marquee.sample import ranked_table, sample_page

    categorical, dense = sample_page(seed)
    with RankerClient(url, protocol=protocol.value, precision=precision.value) as client:
        probability = client.score(categorical, dense)
    console.print(ranked_table(client.spec.name, categorical, probability))


@app.command()
def recommend(
    user: Annotated[int, typer.Option(help="User id.")] = 42,
    region: Annotated[int, typer.Option(help="Region 0-7.")] = 3,
    history: Annotated[str, typer.Option(help="Recently watched item ids, comma-separated.")] = "",
    n: Annotated[int, typer.Option("--n", "-n", help="Page size, 1-100.")] = 20,
    device: Annotated[int, typer.Option(help="0 mobile, 1 TV, 2 web, 3 tablet.")] = 1,
    hour: Annotated[int | None, typer.Option(help="0-23; default: now (UTC).")] = None,
    url: Annotated[str | None, typer.Option(help="Server address; default localhost:8001 (gRPC).")] = None,
    protocol: ProtocolChoice = ProtocolChoice.grpc,
    surface: Annotated[
        str | None, typer.Option(help="Product surface (policies/surfaces.yaml); default: the route's default.")
    ] = None,
) -> None:
    """Ask the `recommend` route for one home-page row."""
    from clients.recommend import RecommendClient
    from marquee.sample import recommendation_table

    try:
        watched = [int(item) for item in history.split(",") if item.strip()]
    except ValueError:
        raise typer.BadParameter(f"--history {history!r}: expected comma-separated integers") from None
    with RecommendClient(url, protocol=protocol.value, surface=surface) as client:
        page = client.recommend(user, region, watched, n=n, device=device, hour=hour)
    console.print(recommendation_table(user, region, page))


@app.command()
def up(
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    wait: Annotated[bool, typer.Option(help="Keep serving until Ctrl-C.")] = True,
    address: AddressOption = "127.0.0.1",
    admin_key_file: AdminKeyFileOption = None,
) -> None:
    """Export the default models, serve them, send a sample request, keep serving."""
    from marquee import render as rendering
    from marquee import serving
    from marquee.paths import model_repository
    from marquee.server import ServerPorts, resolve_admin_key
    from marquee.specs import CATALOGUE
    from marquee.specs.recommend import SETTINGS

    bind = _bind_address(address)
    admin_key = resolve_admin_key(admin_key_file, create=True)
    repository = model_repository().resolve()
    rendering.check(list(CATALOGUE.values()), repository)
    export_ranker(checkpoint=None, precision=None, force=False, repository=repository)
    export_recommend(n_items=SETTINGS.n_items, force=False, repository=repository)
    export_moderation(force=False, repository=repository)
    export_transcription(source=None, force=False, repository=repository)
    export_vision(force=False, repository=repository)
    ports = ServerPorts(http_port, grpc_port, metrics_port)
    server = serving.start_embedded(repository, ports, serving.default_log_path(), address=bind, admin_key=admin_key)
    try:
        console.print(serving.models_table(server.http_url, server.admin_key))
        for precision in PrecisionChoice:
            rank(url=server.grpc_url, protocol=ProtocolChoice.grpc, precision=precision, seed=0)
        serving.warm_up_recommend(server.grpc_url)
        recommend(
            user=42,
            region=3,
            history="1,2,3",
            n=10,
            device=1,
            hour=20,
            url=server.grpc_url,
            protocol=ProtocolChoice.grpc,
            surface="home",
        )
        console.print(serving.endpoints_table(server))
        console.print(_next_steps(server.http_url, server.grpc_url, serving.admin_header_example(server)))
    except BaseException:
        server.stop()
        raise
    if wait:
        serving.wait_until_signalled(server)
    else:
        server.stop()


def _next_steps(http_url: str, grpc_url: str, admin_header: str) -> str:
    return (
        "[bold]Send more requests:[/]\n"
        f"  marquee rank --url {grpc_url} --precision int8\n"
        f"  marquee recommend --url {grpc_url} --user 7 --region 2 --history 10,11 -n 20\n"
        f"  curl -s http://{http_url}/v2/models/ranker_fp32 | python -m json.tool\n"
        f"  curl -s -X POST -H {admin_header} http://{http_url}/v2/repository/index   (admin API: needs the key)\n"
        f"  marquee perf analyzer -- -m ranker_int8 -u {grpc_url} -i grpc -b 64 --concurrency-range 1:4\n"
        "Ctrl-C stops the server."
    )


@perf_app.command("setup")
def perf_setup(
    peers: Annotated[
        bool, typer.Option(help="Also install Ray Serve into .venv-peers, for `marquee perf report`'s Ray comparison.")
    ] = False,
) -> None:
    """Fetch perf_analyzer (and, on glibc < 2.38, a private newer glibc runtime)."""
    from perf.perf_analyzer import locate

    analyzer = locate(install=True)
    via = f" through the loader in {analyzer.loader_root}" if analyzer.loader_root else ""
    console.print(f"[green]✓ perf_analyzer {analyzer.binary}{via}")
    if peers:
        from perf.peers import RAY_REQUIREMENT, install_peers

        with console.status(f"installing {RAY_REQUIREMENT} into .venv-peers ..."):
            python = install_peers()
        console.print(f"[green]✓ {RAY_REQUIREMENT} in {python}")


@perf_app.command("report")
def perf_report(
    only: Annotated[str | None, typer.Option(help="Comma-separated benchmarks (default: all).")] = None,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("perf/reports/one_run"),
    resummarise: Annotated[
        bool, typer.Option(help="Measure nothing: re-read the last run's benchmark reports (after a summary fix).")
    ] = False,
) -> None:
    """Every side-by-side comparison in one run -> report.json, report.md and ratios.png.

    About 40 minutes on 2 cores; keep the host otherwise idle. Ray Serve needs
    `marquee perf setup --peers` first."""
    from perf import report as one_run
    from perf.report import BENCHMARKS, run_all

    if resummarise:
        if not (out / "report.json").is_file():
            raise typer.BadParameter(f"{out} holds no report.json; run `marquee perf report` first", param_hint="--out")
        report = one_run.resummarise(out)
        console.print(f"[green]✓ {out / 'report.md'}[/] re-summarised from the run of {report['date']}")
        return

    names = [b.name for b in BENCHMARKS]
    chosen = names if only is None else [n.strip() for n in only.split(",")]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise typer.BadParameter(f"{unknown}; allowed: {', '.join(names)}", param_hint="--only")
    try:
        report = run_all(tuple(b for b in BENCHMARKS if b.name in chosen), out, progress=console.print)
    except RuntimeError as error:
        console.print(f"[red]✗ {error}")
        raise typer.Exit(1) from None
    missed = [h for r in report["benchmarks"].values() for h in r["headlines"] if not h["met"]]
    console.print(f"[green]✓ {out / 'report.md'}[/] ({len(missed)} target(s) missed; the report says by how much)")


@perf_app.command("run")
def perf_run(
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Repeatable; default: ranker_int8, recommend.")
    ] = None,
    concurrency: Annotated[str, typer.Option(help="perf_analyzer --concurrency-range start:end:step.")] = "1:4",
    batch_size: Annotated[int, typer.Option(help="Rows per request for batched models.")] = 64,
    url: Annotated[str | None, typer.Option(help="gRPC address of a running server; default: start one.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results folder [default: perf/results/<UTC time>].")] = None,
    repository: RepositoryOption = None,
) -> None:
    """perf_analyzer sweep -> results.json, report.md and PNG plots in one folder."""
    from datetime import UTC, datetime

    from marquee.server import TritonServer, free_ports
    from marquee.serving import exported_models, warm_up_recommend
    from perf.perf_analyzer import locate
    from perf.run import sweep, write_report

    models = model or ["ranker_int8", "recommend"]
    repo = _repository(repository)
    out = out or Path("perf/results") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    analyzer = locate()
    if url:
        results = sweep(analyzer, url, repo, models, concurrency, batch_size)
    else:
        ready, _ = exported_models(repo)
        missing = sorted(set(models) - set(ready))
        if missing:
            raise typer.BadParameter(f"--model {missing}: not exported in {repo}; exported: {ready}")
        with TritonServer(repo, free_ports(), models=ready) as server:
            if any(name.startswith("recommend") for name in models):
                warm_up_recommend(server.grpc_url)
            results = sweep(analyzer, server.grpc_url, repo, models, concurrency, batch_size)
    for path in write_report(results, out):
        console.print(f"wrote {path}")


@perf_app.command("compare")
def perf_compare(
    before: Annotated[Path, typer.Argument(help="Results folder (or results.json) of the earlier run.")],
    after: Annotated[Path, typer.Argument(help="Results folder (or results.json) of the later run.")],
) -> None:
    """What changed between two `marquee perf run` results, per model and concurrency."""
    from rich.table import Table

    from perf.run import compare, load

    table = Table(title=f"{before} -> {after}")
    for column in ("model", "concurrency", "metric", "before", "after", "change"):
        table.add_column(column, justify="right")
    for row in compare(load(before), load(after)):
        scale = 1 if row["metric"] == "perf_throughput" else 1000  # latencies: us -> ms
        colour = "green" if row["better"] else "red"
        table.add_row(
            row["model"],
            f"{row['concurrency']:.0f}",
            row["metric"],
            f"{row['before'] / scale:,.2f}",
            f"{row['after'] / scale:,.2f}",
            f"[{colour}]{row['change']:+.1%}[/]",
        )
    console.print(table)


@perf_app.command("gate")
def perf_gate(
    url: Annotated[str | None, typer.Option(help="gRPC address of a running server; default: start one.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these budget entries.")] = None,
    update_baseline: Annotated[
        bool, typer.Option(help="Record this run as this CPU model's entry in perf/baselines/cpu.json.")
    ] = False,
    report: Annotated[Path, typer.Option(help="JSON report.")] = Path("perf/results/gate.json"),
    repository: RepositoryOption = None,
) -> None:
    """Short perf_analyzer runs against perf/budgets.yaml and the baseline; exit 1 on a breach.

    The host picks the budgets: `gpu` where nvidia-smi finds a GPU (never run here), the
    CPU ratios otherwise; MARQUEE_ACCELERATOR overrides what is found (perf/machine.py)."""
    import json

    from marquee import serving
    from marquee.server import TritonServer, free_ports
    from perf.gate import budget_set, load_budgets, models_to_serve, read_baseline, run_gate, write_baseline
    from perf.machine import accelerator, cpu_model
    from perf.perf_analyzer import locate

    host = accelerator()
    chosen = budget_set(host)
    if update_baseline and chosen == "gpu":
        raise typer.BadParameter(
            f"--update-baseline records CPU ratios in perf/baselines/cpu.json, and this host has a GPU "
            f"({host['description']}), where the gate judges absolute `gpu` budgets instead; run it on a CPU "
            "host, or with MARQUEE_ACCELERATOR=cpu"
        )
    console.print(f"host accelerator: {host['description']} ({host['source']}); budgets: {chosen}")
    if chosen == "gpu" and not url:
        console.print(
            "[yellow]note:[/] the embedded server serves this checkout's CPU configs; for the GPU budgets "
            "pass --url of a server running the ngc-gpu repository"
        )
    budgets = load_budgets()
    if model:
        unknown = sorted(set(model) - set(budgets["models"]))
        if unknown:
            raise typer.BadParameter(
                f"--model {unknown}: not in perf/budgets.yaml; allowed: {sorted(budgets['models'])}"
            )
        budgets["models"] = {k: v for k, v in budgets["models"].items() if k in model}
    repo = _repository(repository)
    analyzer = locate()
    baseline = read_baseline()
    if baseline is None and chosen == "cpu":
        console.print(
            f"[yellow]note:[/] perf/baselines/cpu.json has no baseline for this CPU ({cpu_model()}); only the "
            "budgets are judged. Record one on a quiet host with --update-baseline"
        )
    if url:
        result = run_gate(analyzer, url, repo, budgets, baseline, host=host)
    else:
        with TritonServer(repo, free_ports(), models=models_to_serve(budgets)) as server:
            if "recommend" in budgets["models"]:
                serving.warm_up_recommend(server.grpc_url)
            result = run_gate(analyzer, server.grpc_url, repo, budgets, baseline, host=host)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    for m in result.measurements:
        figures = ", ".join(f"{k} {v:.2f}" for k, v in m.ratios.items()) or (
            f"p99 {m.served['perf_latency_p99'] / 1000:.1f} ms, {m.served['perf_throughput']:,.0f} infer/s"
        )
        console.print(f"{m.model} (batch {m.batch_size}, c={m.concurrency}): {figures}")
    for note in result.notes:
        console.print(f"note: {note}")
    if update_baseline:
        console.print(f"baseline written: {write_baseline(result)}")
        return
    for breach in result.breaches:
        console.print(f"[red]✗[/] {breach}")
    if not result.passed:
        raise typer.Exit(1)
    judged = "the gpu budgets" if chosen == "gpu" else "the cpu budgets" + (" and baseline" if baseline else "")
    console.print(f"[green]✓ {len(result.measurements)} model(s) within {judged}[/] (report: {report})")


@perf_app.command("analyzer", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def perf_analyzer(ctx: typer.Context) -> None:
    """Run perf_analyzer with the given arguments (after `--`), on any glibc."""
    import subprocess

    from perf.perf_analyzer import locate

    raise typer.Exit(subprocess.call(locate().command(list(ctx.args))))


def run() -> None:
    try:
        app()
    except MarqueeError as error:
        console.print(f"[red]error:[/] {error}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
