"""The `edgemaxx` command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from cli.health import HealthTarget
from cli.runsc import register_runsc_command
from edgemaxx.models import BackendChoice

if TYPE_CHECKING:
    from edgemaxx.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="A validator for EdgeMaxxing-style text-to-image contests.")
sandbox_app = typer.Typer(no_args_is_help=True, help="Sandbox housekeeping.")
app.add_typer(sandbox_app, name="sandbox")
sandbox_app.command("register-runsc")(register_runsc_command)

# Wide enough for the metrics table when output is piped (CI logs, files).
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)
log = logging.getLogger("edgemaxx.cli")


_verbose = False


def _settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from edgemaxx.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"EDGEMAXX_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]error:[/] bad settings: {problems}")
        raise typer.Exit(2) from exc
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _logging(*, service: bool) -> None:
    """Services log at INFO (each job's outcome, for `docker compose logs`); tools stay quiet."""
    level = logging.DEBUG if _verbose else logging.INFO if service else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False) -> None:
    global _verbose
    _verbose = verbose


SandboxOpt = Annotated[BackendChoice, typer.Option(help="Sandbox backend (auto: Docker when reachable)")]


@app.command()
def bench(
    submission: Annotated[str, typer.Argument(help="A directory, or https://host/owner/repo@REVISION")],
    baseline: Annotated[str | None, typer.Option(help="Directory or URL@REVISION; default: the contest's")] = None,
    contest: Annotated[str, typer.Option(help="Contest id or TOML file (image size, timeouts, weights)")] = "demo-cpu",
    sandbox: SandboxOpt = BackendChoice.AUTO,
    inputs: Annotated[int | None, typer.Option("--inputs", help="Number of requests")] = None,
    seed: Annotated[str, typer.Option(help="Inputs seed (a block hash on chain)")] = "edgemaxx-bench",
    out: Annotated[Path | None, typer.Option(help="Keep every output image and the report here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    gpu: Annotated[int | None, typer.Option(help="GPU index to pin the sandbox to")] = None,
) -> None:
    """Benchmark the baseline, then SUBMISSION, on the same inputs, and score it as a validator would.

    Exit status: 0 scored; 1 the submission is invalid (the reason is printed); 2 the run itself
    failed (the baseline, Docker, ...): not the submission's fault."""
    _logging(service=False)
    _bench(_settings(gpu=gpu), submission, baseline, contest, sandbox, inputs, seed, out, as_json)


def _bench(settings: Settings, submission: str, baseline: str | None, contest: str, sandbox: BackendChoice,
           inputs: int | None, seed: str, out: Path | None, as_json: bool) -> None:
    from cli import render
    from cli.bench import bench as run_bench
    from cli.bench import ensure_backend_ready, report_json, save_outputs
    from edgemaxx.contest import load_contest
    from edgemaxx.errors import InfrastructureError, SubmissionError
    from edgemaxx.inputs import inputs as derive_inputs
    from edgemaxx.models import RunStatus
    from sandbox.select import choose_backend

    try:
        definition = load_contest(contest)
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    if inputs is not None:
        definition = definition.model_copy(
            update={"inputs": definition.inputs.model_copy(update={"count": inputs})})
    progress = render.BenchProgress(err, enabled=not as_json)
    try:
        backend = choose_backend(sandbox)
        ensure_backend_ready(settings, backend)
        requests = derive_inputs(definition, seed)
        with progress:
            report = run_bench(settings, submission, baseline or definition.baseline.spec(),
                               definition, backend, requests, seed, on_phase=progress.update)
    except InfrastructureError as exc:
        err.print(f"[red]error of the run (not the submission's fault):[/] {exc}")
        raise typer.Exit(2) from exc
    except SubmissionError as exc:
        err.print(f"[red]submission is invalid:[/] {exc.reason}")
        raise typer.Exit(1) from exc
    if out:
        save_outputs(report, out)
    if as_json:
        sys.stdout.write(json.dumps(report_json(report), indent=2) + "\n")
    else:
        runtime = next((f" under {r.runtime.value}" for r in report.rows if r.runtime), "")
        console.print(render.run_table(report.rows, f"{definition.id} · {backend.value} sandbox{runtime} · "
                                                    f"{len(requests)} inputs"))
        console.print(render.per_request_table(report.rows))
        render.print_reasons(console, report.rows)
        if report.verdict is not None:
            render.print_score(console, report.verdict, definition)
    if report.error:
        err.print(f"[red]error of the run:[/] {report.error}")
        raise typer.Exit(2)
    if report.submission is None or report.submission.status is not RunStatus.OK:
        raise typer.Exit(1)


@app.command()
def check(
    submission: Annotated[str, typer.Argument(help="A directory, an https URL (with --revision), or URL@REVISION")],
    revision: Annotated[str | None, typer.Option(help="Revision, for a URL")] = None,
    contest: Annotated[str, typer.Option(help="Contest to check against")] = "flux-4090",
    build: Annotated[bool, typer.Option(help="Build the sandbox image too")] = True,
    benchmark: Annotated[bool, typer.Option(help="Then benchmark and score against the contest baseline")] = False,
    sandbox: SandboxOpt = BackendChoice.AUTO,
) -> None:
    """Run the validator's checks on a submission before you commit it.

    Exit status: 0 every check passed; 1 a check failed (each says why); 2 the tool itself failed."""
    from edgemaxx.contest import load_contest
    from edgemaxx.errors import InfrastructureError, SubmissionError
    from edgemaxx.models import Backend, CheckReport
    from images.checks import full_check
    from images.source import parse_source
    from sandbox.select import choose_backend, docker_client

    _logging(service=False)
    settings = _settings()
    spec = f"{submission}@{revision}" if revision and "@" not in submission else submission
    try:
        load_contest(contest)
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    report = CheckReport()
    failure: tuple[int, str] | None = None
    try:
        source = parse_source(spec)
        backend = choose_backend(sandbox) if build or benchmark else None
        client = docker_client() if backend is Backend.DOCKER else None
        full_check(settings, source, backend=backend, docker_client=client, report=report)
    except SubmissionError as exc:
        failure = (1, f"[red]✗[/] {exc.reason}")
    except InfrastructureError as exc:
        failure = (2, f"[red]error (not the submission's fault):[/] {exc}")
    except Exception as exc:  # a miner sees a line with the reason, never a traceback
        log.debug("check failed", exc_info=True)
        failure = (2, f"[red]error of edgemaxx (not the submission's fault):[/] {type(exc).__name__}: {exc}")
    for result in report.checks:
        mark = "[yellow]?[/]" if result.unknown else "[green]✓[/]" if result.ok else "[red]✗[/]"
        console.print(f"{mark} {result.name:<16} ", end="")
        console.print(result.reason, markup=False, highlight=False)
    if failure:
        err.print(failure[1], markup=True, highlight=False)
        raise typer.Exit(failure[0])
    if not report.ok:
        raise typer.Exit(1)
    unknown = [r.name for r in report.checks if r.unknown]
    if unknown:
        console.print(f"[green]no check failed[/]; not decided here: {', '.join(unknown)}")
    else:
        console.print("[green]all checks passed[/]")
    if benchmark:
        _bench(settings, spec, None, contest, sandbox, None, "edgemaxx-check", None, False)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Serve the HTTP API (status, contests, submissions, /metrics)."""
    from api.app import serve

    _logging(service=True)
    serve(_settings(api_host=host, api_port=port))


@app.command()
def status(
    url: Annotated[str | None, typer.Option(help="The validator's API (default: this host's EDGEMAXX_API_PORT)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON")] = False,
) -> None:
    """Print the validator's state: workers, runs and when they should be done, queues, weights."""
    from cli.status import StatusUnavailable, fetch_status, print_status

    settings = _settings()
    target = url or f"http://127.0.0.1:{settings.api_port}"
    try:
        found = fetch_status(target)
    except StatusUnavailable as exc:
        err.print(f"[red]status unavailable:[/] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(found.model_dump_json(indent=2))
    else:
        print_status(console, found)
    if not found.healthy:
        raise typer.Exit(1)


@app.command()
def builder(
    name: Annotated[str | None, typer.Option(help="Worker name (unique per host)")] = None,
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty")] = False,
) -> None:
    """A CPU worker: clones, checks, builds and fetches models for submissions."""
    from worker.process import run_worker

    _logging(service=True)
    run_worker(_settings(), "builder", name=name, burst=burst)


@app.command()
def worker(
    gpu: Annotated[int | None, typer.Option(help="GPU index this worker owns (none: CPU)")] = None,
    name: Annotated[str | None, typer.Option(help="Worker name (default: HOST-gpuN)")] = None,
    contest: Annotated[list[str] | None, typer.Option(help="Contest ids or TOML files to serve (default: all)")] = None,
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty")] = False,
) -> None:
    """A GPU worker: benchmarks the baseline, then prepared submissions, one at a time."""
    from worker.process import run_worker

    _logging(service=True)
    try:
        run_worker(_settings(), "gpu", gpu=gpu, name=name, contests=contest, burst=burst)
    except ValueError as exc:  # an unknown contest, or an invalid contest file
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def housekeeping(
    dry_run: Annotated[bool, typer.Option(help="Only report (disk, what the runs use)")] = False,
) -> None:
    """One housekeeping pass on this host: prune old runs, remove unused environments, clones and
    run directories, evict models past the cache cap. Workers run it by themselves every hour."""
    from redis import Redis

    from edgemaxx.errors import InfrastructureError
    from sandbox.select import docker_client
    from worker.housekeeping import disk_usage, run_housekeeping

    _logging(service=False)
    settings = _settings()
    if dry_run:
        for disk in disk_usage(settings):
            console.print(f"{disk.path}: {disk.free_bytes / 2**30:.1f} of {disk.total_bytes / 2**30:.1f} GiB free"
                          + (" [red](low)[/]" if disk.low else ""))
        return
    if not settings.redis_url:
        err.print("[red]error:[/] EDGEMAXX_REDIS_URL is not set")
        raise typer.Exit(2)
    try:
        client = docker_client()
    except InfrastructureError:
        client = None
    report = run_housekeeping(Redis.from_url(settings.redis_url), settings, client)
    if report is None:
        err.print("another housekeeping pass is running on this host")
        raise typer.Exit(1)
    console.print(f"pruned {len(report.pruned_runs)} run(s), removed {len(report.removed_environments)} "
                  f"environment(s) and {report.removed_run_dirs} run dir(s), evicted "
                  f"{len(report.evicted_models)} model(s); model cache {report.models_bytes / 2**30:.1f} GiB")
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}")


@app.command()
def demo(
    serve: Annotated[bool, typer.Option(help="Keep the service running after the leaderboard")] = False,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
) -> None:
    """Run the whole service on the embedded demo contest and print its leaderboard."""
    from cli import render
    from cli.bench import ensure_backend_ready
    from cli.demo import DemoResult, run_demo
    from edgemaxx.errors import InfrastructureError
    from sandbox.select import choose_backend

    _logging(service=False)
    settings = _settings(api_port=port)

    def show(result: DemoResult) -> None:
        console.print(render.leaderboard_table(result.contest))
        console.print(f"status: {result.status_url}")
        if serve:
            console.print("serving; Ctrl-C to stop")

    try:
        ensure_backend_ready(settings, choose_backend(settings.sandbox_backend))
        run_demo(settings, serve=serve, on_ready=show)
    except InfrastructureError as exc:
        err.print(f"[red]demo failed:[/] {exc}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt as exc:  # SIGINT or SIGTERM before the leaderboard: all stopped
        err.print("demo stopped; every process it started has exited")
        raise typer.Exit(130) from exc


def _chain_overrides(netuid: int | None, network: str | None, endpoint: str | None, wallet_name: str | None,
                     wallet_hotkey: str | None, wallet_path: str | None) -> Settings:
    return _settings(netuid=netuid, subtensor_network=network, subtensor_chain_endpoint=endpoint,
                     wallet_name=wallet_name, wallet_hotkey=wallet_hotkey, wallet_path=wallet_path)


NetuidOpt = Annotated[int | None, typer.Option("--netuid", help="Subnet (default 39, or EDGEMAXX_NETUID)")]
NetworkOpt = Annotated[str | None, typer.Option("--subtensor.network", help="finney, test, local")]
EndpointOpt = Annotated[str | None, typer.Option("--subtensor.chain_endpoint", help="ws:// or wss:// endpoint")]
WalletNameOpt = Annotated[str | None, typer.Option("--wallet.name", help="Wallet (coldkey) name")]
WalletHotkeyOpt = Annotated[str | None, typer.Option("--wallet.hotkey", help="Hotkey name")]
WalletPathOpt = Annotated[str | None, typer.Option("--wallet.path", help="Wallets directory")]


def _subtensor(settings: Settings) -> Any:
    import bittensor as bt

    return bt.Subtensor(settings.subtensor_chain_endpoint or settings.subtensor_network)


def _wallet(settings: Settings) -> Any:
    import bittensor as bt

    return bt.Wallet(settings.wallet_name, settings.wallet_hotkey, path=settings.wallet_path)


@app.command("chain")
def chain_service(netuid: NetuidOpt = None, network: NetworkOpt = None, endpoint: EndpointOpt = None,
                  wallet_name: WalletNameOpt = None, wallet_hotkey: WalletHotkeyOpt = None,
                  wallet_path: WalletPathOpt = None) -> None:
    """Read commitments, start contest runs on schedule and set weights, as a service."""
    from redis import Redis

    from chain.service import ChainService

    _logging(service=True)
    settings = _chain_overrides(netuid, network, endpoint, wallet_name, wallet_hotkey, wallet_path)
    if not settings.redis_url:
        err.print("[red]error:[/] EDGEMAXX_REDIS_URL is not set")
        raise typer.Exit(2)
    service = ChainService(settings, Redis.from_url(settings.redis_url), lambda: _subtensor(settings),
                           _wallet(settings))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the wait between iterations ends at once
        signal.signal(sig, lambda *_: stop.set())
    service.run(stop)


@app.command()
def submit(
    repository: Annotated[str, typer.Option(help="https://github.com/OWNER/REPO")],
    revision: Annotated[str, typer.Option(help="Commit (7+ hex characters), pushed as a branch or tag tip")],
    contest: Annotated[str, typer.Option(help="Contest id")] = "flux-4090",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Publish without asking")] = False,
    netuid: NetuidOpt = None, network: NetworkOpt = None, endpoint: EndpointOpt = None,
    wallet_name: WalletNameOpt = None, wallet_hotkey: WalletHotkeyOpt = None, wallet_path: WalletPathOpt = None,
) -> None:
    """Publish a submission as an on-chain commitment, signed with your hotkey."""
    from chain.commitments import Commitment, CommitmentError, encode, record_from_url
    from chain.publish import check_revision, publish_commitment
    from edgemaxx.errors import SubmissionError
    from images.urls import validate_repository_url

    settings = _chain_overrides(netuid, network, endpoint, wallet_name, wallet_hotkey, wallet_path)
    try:
        url = validate_repository_url(repository, allow_private=settings.allow_private_hosts)
        commit, ref = check_revision(url, revision, ca_bundle=str(settings.extra_ca_bundle or "") or None)
        record = record_from_url(url, commit, contest)
        data = encode(Commitment(records=[record]))
    except (SubmissionError, CommitmentError) as exc:
        err.print(f"[red]✗[/] {exc.reason}")
        raise typer.Exit(1) from exc
    wallet = _wallet(settings)
    console.print(f"repository  {record.url}\nrevision    {record.revision} ({ref})\n"
                  f"contest     {contest} (#{record.contest})\nnetuid      {settings.netuid}\n"
                  f"hotkey      {wallet.hotkey.ss58_address}\ncommitment  {len(data)} bytes: {data.hex()}")
    if not yes and not typer.confirm("Publish this commitment?"):
        raise typer.Exit(1)
    result = publish_commitment(_subtensor(settings), wallet, settings.netuid, data)
    if not result.success:
        err.print(f"[red]publishing failed:[/] {result.message}")
        raise typer.Exit(2)
    console.print(f"[green]published[/] {result.extrinsic_id or result.block_hash or ''}")


@app.command("compose-gpus")
def compose_gpus(
    gpus: Annotated[str, typer.Argument(help="GPU indices, e.g. 0,1,2,3")],
    file: Annotated[Path, typer.Option("--file", "-f", help="The compose file to extend")] = Path("docker-compose.yml"),
) -> None:
    """Print a docker-compose override with one worker per GPU (GPU 0 is in the base file)."""
    import yaml

    from cli.compose import TEMPLATE, gpu_override

    try:
        indices = sorted({int(part) for part in gpus.split(",") if part.strip()})
    except ValueError as exc:
        err.print(f"[red]error:[/] {gpus!r} is not a comma-separated list of GPU indices")
        raise typer.Exit(2) from exc
    try:
        sys.stdout.write(gpu_override(file.read_text(), indices, gpus))
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        err.print(f"[red]error:[/] {file} has no readable services.{TEMPLATE} to copy ({exc})")
        raise typer.Exit(2) from exc


@app.command()
def healthcheck(
    service: Annotated[HealthTarget, typer.Argument(help="Which service")],
    gpu: Annotated[int | None, typer.Option(help="The worker's GPU (as given to `edgemaxx worker`)")] = None,
    name: Annotated[str | None, typer.Option(help="The worker's name (default: as the worker names itself)")] = None,
    url: Annotated[str | None, typer.Option(help="The API's status URL")] = None,
) -> None:
    """Is this service healthy, as /v1/status sees it? One line; exit 0 (yes) or 1 (no). For compose."""
    from cli.health import check_api, check_chain, check_worker
    from worker.process import worker_name

    settings = _settings()
    if service is HealthTarget.API:
        ok, why = check_api(url or f"http://127.0.0.1:{settings.api_port}/v1/status")
    elif service is HealthTarget.CHAIN:
        ok, why = check_chain(settings)
    else:
        kind = "builder" if service is HealthTarget.BUILDER else "gpu"
        ok, why = check_worker(settings, worker_name(kind, gpu, name, settings.host))
    (console if ok else err).print(why, markup=False, highlight=False)
    raise typer.Exit(0 if ok else 1)


@app.command("base-image")
def base_image(
    force: Annotated[bool, typer.Option(help="Rebuild even if it exists")] = False,
) -> None:
    """Build the local Debian + Python base image the sandbox images start from."""
    from edgemaxx.errors import InfrastructureError
    from images.base import build_base_image
    from sandbox.select import docker_client

    settings = _settings()
    try:
        built = build_base_image(docker_client(), settings.base_image, force=force)
    except InfrastructureError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"{settings.base_image}: {'built' if built else 'already present'}")


@sandbox_app.command("reap")
def reap(
    owner: Annotated[str | None, typer.Option(help="Only this owner's leftovers")] = None,
) -> None:
    """Remove sandbox containers left behind by a crash."""
    from edgemaxx.errors import InfrastructureError
    from sandbox.docker_backend import reap as reap_containers
    from sandbox.select import docker_client

    try:
        removed = reap_containers(docker_client(), owner)
    except InfrastructureError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"removed {removed} container(s)")


def main() -> None:
    app()
