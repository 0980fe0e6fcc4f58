"""Every Redis key edgemaxx uses, in one place."""

PREFIX = "edgemaxx"

QUEUE_PREPARE = "edgemaxx-prepare"
QUEUE_CHECKS = "edgemaxx-checks"  # miners' pre-commit checks, on the builders


def check(check_id: str) -> str:
    """String: the CheckRecord JSON of a miner's check request."""
    return f"{PREFIX}:check:{check_id}"


def rate(bucket: str, client: str) -> str:
    """Counter with a TTL: requests from one client in the current window."""
    return f"{PREFIX}:rate:{bucket}:{client}"


def queue_gpu(contest_id: str) -> str:
    return f"edgemaxx-gpu-{contest_id}"


def current_run(contest_id: str) -> str:
    """String: the id of the contest's current run."""
    return f"{PREFIX}:contest:{contest_id}:current"


def run(run_id: str) -> str:
    """String: the ContestRun JSON."""
    return f"{PREFIX}:run:{run_id}"


def submissions(run_id: str) -> str:
    """Hash: hotkey → SubmissionRecord JSON (state as it changes)."""
    return f"{PREFIX}:run:{run_id}:submissions"


def results(run_id: str) -> str:
    """Hash: hotkey → final SubmissionRecord JSON, written once (HSETNX)."""
    return f"{PREFIX}:run:{run_id}:results"


def landings(run_id: str) -> str:
    """List: hotkeys in the order their results landed (one entry per landing)."""
    return f"{PREFIX}:run:{run_id}:landings"


def outputs(run_id: str, name: str) -> str:
    """Hash: input index → output image bytes, for a submission or a worker's baseline."""
    return f"{PREFIX}:run:{run_id}:outputs:{name}"


def baseline(run_id: str, worker: str) -> str:
    """String: the baseline RunResult JSON measured by `worker` for this run."""
    return f"{PREFIX}:run:{run_id}:baseline:{worker}"


def baseline_prepared(run_id: str) -> str:
    return f"{PREFIX}:run:{run_id}:baseline-prepared"


def order(run_id: str) -> str:
    """List: the order submissions were benchmarked in (for checking baseline-first)."""
    return f"{PREFIX}:run:{run_id}:order"


def hotkey_runs(hotkey: str) -> str:
    """Sorted set: run ids this hotkey appears in, scored by time."""
    return f"{PREFIX}:hotkey:{hotkey}:runs"


WORKERS = f"{PREFIX}:workers"  # hash: worker name → WorkerStatus JSON (written by whoever runs the job)
WORKER_BUSY = f"{PREFIX}:workers-busy"  # hash: worker name → seconds spent on jobs (float)
COUNTERS = f"{PREFIX}:counters"  # hash: counter name → integer
DURATIONS = f"{PREFIX}:durations"  # list of recent benchmark durations (seconds)
CHAIN_STATUS = f"{PREFIX}:chain:status"
NONCES = f"{PREFIX}:nonces"
