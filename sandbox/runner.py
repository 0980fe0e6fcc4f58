"""Running one submission: wait for its socket, send the requests, measure, always clean up."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from edgemaxx.errors import SubmissionError
from edgemaxx.models import MemoryGuard, RequestOutcome, RunResult, RunStatus, TextToImageRequest
from sandbox.base import Limits, Sandbox
from sandbox.gpu import Gpu
from sandbox.logs import cap
from sandbox.protocol import InferenceClient, ProtocolTimeout, check_image
from sandbox.sampler import Sampler
from sandbox.workspace import tree_bytes

log = logging.getLogger(__name__)

_READY_POLL_S = 0.05
_DISK_CHECK_EVERY_S = 1.0


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        return self.at - time.monotonic()


def _wait_ready(box: Sandbox, limits: Limits, run: _Deadline) -> InferenceClient:
    """Poll until the socket accepts a connection; the submission exiting or the clock ends it."""
    deadline = min(time.monotonic() + limits.load_timeout_s, run.at)
    while True:
        reason = box.exit_reason()
        if reason is not None:
            raise SubmissionError(f"the submission {reason} before opening inferences.sock")
        # lexists: a symlink in the socket's place must reach connect(), which refuses it,
        # not look like "not there yet" until the load timeout.
        if os.path.lexists(box.socket_path):
            try:
                return InferenceClient.connect(str(box.socket_path), limits.max_output_bytes)
            except (FileNotFoundError, ConnectionRefusedError):
                pass
            except OSError as exc:
                log.debug("socket not ready: %s", exc)
        if time.monotonic() >= deadline:
            raise SubmissionError(
                f"did not open inferences.sock within the {limits.load_timeout_s:.0f} s load timeout"
            )
        time.sleep(_READY_POLL_S)


def _request(client: InferenceClient, request: TextToImageRequest, timeout_s: float,
             what: str) -> tuple[bytes, float]:
    started = time.perf_counter()
    try:
        data = client.request(request, timeout_s)
    except ProtocolTimeout as exc:
        raise SubmissionError(f"{what} took longer than the {timeout_s:.2f} s request timeout") from exc
    except SubmissionError as exc:
        raise SubmissionError(f"{what}: the submission {exc.reason}") from exc
    return data, time.perf_counter() - started


ProgressFn = Callable[[str, int | None, int | None], None]


def no_progress(phase: str, current: int | None = None, total: int | None = None) -> None:
    return None


def run_submission(box: Sandbox, name: str, requests: list[TextToImageRequest], limits: Limits,
                   gpu: Gpu | None, sample_interval_s: float = 0.05,
                   progress: ProgressFn = no_progress) -> RunResult:
    """Start `box`, benchmark it on `requests`, and return the result; `box` is always removed."""
    result = RunResult(name=name, backend=box.backend, runtime=box.runtime, status=RunStatus.OK, tier=box.tier,
                       memory_guard=box.memory_guard)
    run = _Deadline(limits.run_timeout_s)
    entering = time.monotonic()
    stopping = entering
    with box:
        # Where no cgroup holds the sandbox, the sampler is the memory limit: it can only act
        # between samples, so a fast allocation can overshoot until the next one.
        sampler = Sampler(
            probe=box.probe(), gpu=gpu, interval_s=sample_interval_s,
            memory_limit=None if box.memory_guard is MemoryGuard.KERNEL else limits.memory_mb * 2**20,
            on_over_limit=lambda used: box.kill(
                f"was killed by the validator's memory sampler for exceeding the {limits.memory_mb} "
                f"MiB memory limit (used {used / 2**20:.0f} MiB)"),
        )
        sampler.start()
        started = time.monotonic()
        result.phases.start_s = started - entering
        client: InferenceClient | None = None
        try:
            # 1. Load: process start → socket accepting (the submission's own warm-up included).
            progress("loading", None, None)
            client = _wait_ready(box, limits, run)
            result.metrics.load_time_s = time.monotonic() - started

            # 2. Warm-up requests, not measured: first-call allocations and autotuning stay out.
            for i in range(limits.warmup_requests):
                progress("warm-up", i + 1, limits.warmup_requests)
                _, warmup_s = _request(client, requests[i % len(requests)],
                                       _bounded(max(limits.request_timeout_s * 3, 10.0), run),
                                       f"warm-up request {i + 1}")
                result.metrics.warmup_times_s.append(warmup_s)

            # 3. Measured requests, on the validator's clock.
            energy_start = sampler.energy_mj()
            last_disk_check = time.monotonic()
            for index, request in enumerate(requests):
                what = f"request {index + 1} of {len(requests)}"
                progress("request", index + 1, len(requests))
                sent = time.monotonic()
                data, elapsed = _request(client, request,
                                         _bounded(limits.request_timeout_s, run), what)
                outcome = RequestOutcome(index=index, generation_time_s=elapsed,
                                         output_bytes=len(data), decoded=False,
                                         gpu=sampler.telemetry(sent, time.monotonic()))
                result.requests.append(outcome)
                try:
                    outcome.width, outcome.height = check_image(data, request.width, request.height)
                except SubmissionError as exc:
                    outcome.error = exc.reason
                    raise SubmissionError(f"{what}: the submission {exc.reason}") from exc
                outcome.decoded = True
                result.outputs.append(data)
                result.metrics.generation_times_s.append(elapsed)
                if outcome.gpu is not None:
                    result.metrics.gpu_telemetry.append(outcome.gpu)
                if time.monotonic() - last_disk_check > _DISK_CHECK_EVERY_S:
                    _check_scratch(box, limits)
                    last_disk_check = time.monotonic()
            energy_end = sampler.energy_mj()
            if energy_start is not None and energy_end is not None and requests:
                result.metrics.energy_per_image_j = (energy_end - energy_start) / 1000 / len(requests)
            _check_scratch(box, limits)
        except SubmissionError as exc:
            result.status = RunStatus.INVALID
            result.reason = _blame(box, exc.reason)
        finally:
            stopping = time.monotonic()
            if client is not None:
                client.close()
            sampler.stop()
            result.metrics.peak_ram_bytes = sampler.peak_ram or None
            result.metrics.peak_vram_bytes, result.metrics.vram_method = sampler.vram()
            result.metrics.peak_vram_device_delta_bytes = sampler.peak_vram_device
            result.log_tail = cap(box.log_tail(), limits.log_tail_bytes)
    result.phases.teardown_s = time.monotonic() - stopping
    return result


def _bounded(timeout_s: float, run: _Deadline) -> float:
    left = run.left()
    if left <= 0:
        raise SubmissionError(f"ran past the whole-run limit of {run.seconds:.0f} s")
    return min(timeout_s, left)


def _check_scratch(box: Sandbox, limits: Limits) -> None:
    used = tree_bytes(box.scratch_dir)
    if used > limits.scratch_mb * 2**20:
        box.kill(f"wrote {used / 2**20:.0f} MiB to its scratch directory, over {limits.scratch_mb} MiB")
        raise SubmissionError(
            f"wrote {used / 2**20:.0f} MiB to its scratch directory, over the {limits.scratch_mb} MiB limit"
        )


def _blame(box: Sandbox, reason: str) -> str:
    """Prefer the process's own fate (crash, OOM kill) over the symptom the client saw."""
    for _ in range(20):  # the exit status can lag the closed socket by a moment
        exit_reason = box.exit_reason()
        if exit_reason is not None:
            if exit_reason in reason:
                return reason
            return f"{reason} (the submission {exit_reason})"
        if "closed the inference socket" not in reason:
            break
        time.sleep(0.05)
    return reason
