"""`edgemaxx status`: the validator's state for an operator in a terminal, as `GET /v1/status`
serves it (workers and what each is doing, each contest's run and when it should be done, queues,
weights, disks, warnings)."""

from __future__ import annotations

import time

import httpx
from pydantic import ValidationError
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from api.schemas import StatusPublic, WorkerPublic


class StatusUnavailable(Exception):
    """The API could not be asked, or answered something that is not a status."""


def fetch_status(url: str, timeout_s: float = 10.0) -> StatusPublic:
    endpoint = url.rstrip("/") + "/v1/status"
    try:
        response = httpx.get(endpoint, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise StatusUnavailable(f"cannot reach {endpoint}: {exc} (is `edgemaxx api` running there?)") from exc
    if response.status_code != 200:
        raise StatusUnavailable(f"{endpoint} answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        return StatusPublic.model_validate_json(response.content)
    except ValidationError as exc:
        raise StatusUnavailable(f"{endpoint} did not answer a validator status: {exc.error_count()} "
                                f"fields do not match (another service on that port?)") from exc


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _ago(at: float | None, now: float) -> str:
    return "—" if at is None else (f"{_duration(now - at)} ago" if at <= now else f"in {_duration(at - now)}")


def _doing(worker: WorkerPublic) -> str:
    p = worker.progress
    if not worker.alive:
        return "[red]gone[/]"
    if worker.sandbox_problem:
        return f"[red]refuses jobs:[/] {worker.sandbox_problem}"
    if not worker.busy:
        return "[green]idle[/]"
    step = f" {p.current}/{p.total}" if p.current is not None and p.total else ""
    return f"{p.phase}{step} · {p.hotkey or ''}"


def render_status(status: StatusPublic, now: float | None = None) -> Group:
    now = time.time() if now is None else now
    health = Text.from_markup(
        f"service {'[green]healthy[/]' if status.healthy else '[red]unhealthy[/]'} · "
        f"Redis {'up' if status.redis else '[red]down[/]'} · disks {'[red]low[/]' if status.disk_low else 'ok'}")
    parts: list[Table | Text] = [health]
    workers = Table(title="workers", title_justify="left")
    for column in ("worker", "card", "doing", "spent", "left (est.)", "busy"):
        workers.add_column(column, justify="right" if column in ("spent", "left (est.)", "busy") else "left")
    for w in status.workers:
        busy = f"{100 * w.busy_fraction:.0f} %" if w.busy_fraction is not None else "—"
        workers.add_row(w.name, w.gpu_name or (f"GPU {w.gpu}" if w.gpu is not None else w.kind), _doing(w),
                        _duration(w.elapsed_s), _duration(w.eta_s), busy)
    parts.append(workers)
    runs = Table(title="runs", title_justify="left")
    for column in ("contest", "run", "state", "submissions", "baseline", "done in (est.)"):
        runs.add_column(column)
    for c in status.contests:
        states = ", ".join(f"{n} {s}" for s, n in sorted(c.states.items()) if n) or "none"
        baseline = ("measured" if c.baseline_ready
                    else f"[red]{c.baseline_error}[/]" if c.baseline_error else "not yet")
        eta = (f"{_duration(c.eta_s)} ({c.waiting} waiting)" if c.state.value == "running"
               else f"ended {_ago(c.finished_at, now)}: {c.end_reason}")
        runs.add_row(c.contest, c.run_id, c.state.value, states, baseline, eta)
    parts.append(runs)
    queues = ", ".join(f"{name} {depth}" for name, depth in status.queues.items())
    parts.append(Text(f"queues: {queues or '—'}"))
    weights = status.weights
    if weights is None:
        parts.append(Text("weights: the chain service has not reported yet"))
    else:
        vector = ", ".join(f"{uid}: {w:.4f}" for uid, w in sorted(weights.last_set_weights.items(),
                                                                      key=lambda kv: -kv[1]))
        last = (f"set {_ago(weights.last_set_at, now)} at block {weights.last_set_block} from "
                f"{', '.join(weights.last_set_runs) or '—'}: {vector or '—'}") if weights.last_set_at else "never set"
        parts.append(Text(f"weights: {last}; next attempt {_ago(weights.next_attempt_at, now)}"))
    for warning in status.warnings:
        parts.append(Text.from_markup("[yellow]warning:[/] ") + Text(warning))
    return Group(*parts)


def print_status(console: Console, status: StatusPublic) -> None:
    console.print(render_status(status))
