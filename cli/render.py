"""Tables for the terminal."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from api.schemas import ContestPublic
from edgemaxx.contest import Contest
from edgemaxx.models import MemoryGuard, RunResult, RunStatus
from worker.evaluate import Outcome, Verdict


class BenchProgress:
    """Where `edgemaxx bench` is: a live bar on a terminal, one line per step in a log."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last: tuple[str, str, int | None] | None = None

    def __enter__(self) -> BenchProgress:
        if self.enabled and self.console.is_terminal:
            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("starting", total=None)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, row: str, phase: str, current: int | None = None, total: int | None = None) -> None:
        if not self.enabled or self._last == (row, phase, current):
            return
        self._last = (row, phase, current)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=f"{row}: {phase}", completed=current or 0, total=total)
            return
        step = f" {current}/{total}" if current is not None and total else ""
        self.console.print(f"[dim]{row}: {phase}{step}[/]", highlight=False)


def _fmt_bytes(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{value / 2**20:,.1f} MiB"


def _fmt_s(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def _guard_caption(rows: list[RunResult]) -> str | None:
    """Said under the table when no cgroup held a run: memory was only watched by the sampler."""
    if any(row.memory_guard is MemoryGuard.SAMPLER for row in rows):
        return "memory limit enforced by the validator's sampler only (no cgroup on this host)"
    return None


def run_table(rows: list[RunResult], title: str) -> Table:
    table = Table(title=title, caption=_guard_caption(rows))
    for column in ("", "status", "sandbox", "load", "gen mean", "gen median", "cv", "peak VRAM",
                   "energy/img", "peak RAM", "size", "outputs"):
        table.add_column(column, justify="left" if column in ("", "status") else "right")
    for row in rows:
        m = row.metrics
        decoded = sum(r.decoded for r in row.requests)
        table.add_row(
            row.name,
            "[green]ok[/]" if row.status is RunStatus.OK else "[red]invalid[/]",
            row.tier.value if row.tier else "—",
            _fmt_s(m.load_time_s, 2),
            _fmt_s(m.mean_generation_time_s),
            _fmt_s(m.median_generation_time_s),
            "—" if m.cv_generation_time is None else f"{m.cv_generation_time:.1%}",
            _fmt_bytes(m.peak_vram_bytes) + (f" ({m.vram_method})" if m.vram_method else ""),
            "—" if m.energy_per_image_j is None else f"{m.energy_per_image_j:.1f} J",
            _fmt_bytes(m.peak_ram_bytes),
            _fmt_bytes(m.size_bytes),
            f"{decoded}/{len(row.requests)} decoded",
        )
    return table


def per_request_table(rows: list[RunResult]) -> Table:
    """Time per request; on a GPU also its SM clock, power and any clock-event reason (why it was slow)."""
    table = Table(title="generation time per request")
    table.add_column("#", justify="right")
    for row in rows:
        table.add_column(row.name, justify="right")
    count = max((len(r.requests) for r in rows), default=0)
    for index in range(count):
        cells = []
        for row in rows:
            outcome = row.requests[index] if index < len(row.requests) else None
            if outcome is None:
                cells.append("—")
                continue
            cell = f"{outcome.generation_time_s:.3f} s"
            if outcome.gpu is not None:
                events = ",".join(e for e in outcome.gpu.clock_events if e != "gpu_idle")
                cell += f" · {outcome.gpu.sm_clock_mhz:.0f} MHz {outcome.gpu.power_w:.0f} W {events}".rstrip()
            cells.append(cell)
        table.add_row(str(index + 1), *cells)
    return table


def print_reasons(console: Console, rows: list[RunResult]) -> None:
    for row in rows:
        if row.status is not RunStatus.OK:
            console.print(f"[red]{row.name} is invalid:[/] {row.reason}")
            if row.log_tail.strip():
                tail = "\n".join(row.log_tail.strip().splitlines()[-15:])
                console.print("[dim]last lines of its log:[/]")
                console.print(tail, markup=False, highlight=False)


def leaderboard_table(contest: ContestPublic) -> Table:
    """The baseline (score 1 by definition) among the submissions, best first."""
    table = Table(title=f"{contest.id} · run {contest.run_id} · {contest.inputs} inputs")
    for column in ("rank", "hotkey", "state", "score", "gen median", "similarity (mean/min)", "weight",
                   "reason"):
        table.add_column(column, justify="right" if column in ("rank", "score", "weight") else "left")
    rows = []
    for baseline in contest.baselines[:1]:
        rows.append((1.0, ["—", "baseline", "[cyan]baseline[/]", "1.000",
                           _fmt_s(baseline.summary.get("median_generation_time_s")), "1.000 / 1.000", "—", ""]))
    for row in contest.leaderboard:
        summary = row.summary or {}
        similarity = ("—" if row.similarity_mean is None
                      else f"{row.similarity_mean:.3f} / {row.similarity_min:.3f}")
        # invalid is the miner's fault (red); error is the validator's (yellow)
        colour = {"scored": "green", "error": "yellow"}.get(row.state.value, "red")
        state = f"[{colour}]{row.state.value}[/]"
        rows.append((row.score if row.score is not None else -1.0, [
            str(row.rank or "—"), row.hotkey, state,
            "—" if row.score is None else f"{row.score:.3f}",
            _fmt_s(summary.get("median_generation_time_s")), similarity,
            "—" if row.weight is None else f"{row.weight:.3f}",
            (row.reason or row.flagged)[:80]]))
    for _, cells in sorted(rows, key=lambda r: -r[0]):
        table.add_row(*cells)
    return table


def print_score(console: Console, verdict: Verdict, contest: Contest) -> None:
    """The score as a validator computes it, each term with its weight, and the similarity."""
    weights = contest.weights.model_dump()
    if verdict.similarity is not None:
        console.print(f"similarity ({verdict.similarity.metric.value}): mean {verdict.similarity.mean:.3f}, "
                      f"worst input {verdict.similarity.min:.3f} (floor {contest.similarity_floor:.2f})")
    if verdict.score is not None and verdict.score.terms:
        table = Table(title="score terms (baseline / submission; similarity: (mean − floor) / (1 − floor))")
        for column in ("term", "value", "weight"):
            table.add_column(column, justify="left" if column == "term" else "right")
        for name, value in verdict.score.terms.items():
            table.add_row(name, f"{value:.4f}", f"{weights.get(name, 0.0):.2f}")
        console.print(table)
        for note in verdict.notes:
            console.print(f"[dim]note: {note}[/]")
    if verdict.outcome is Outcome.SCORED and verdict.score is not None and verdict.score.score is not None:
        console.print(f"[bold]score: {verdict.score.score:.3f}[/] (the baseline scores 1.000; above 1 earns)")
    else:
        console.print(f"[red]no score:[/] {verdict.reason}")
