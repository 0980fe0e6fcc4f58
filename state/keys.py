"""Every Redis key edgemaxx uses, in one place. Only the `state` package reads or writes them
(RQ owns its own keys under `rq:`; the queue names below are the only thing shared with it)."""

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
    """The contest's shared GPU queue: benchmarks not tied to a host (any GPU worker of the contest)."""
    return f"edgemaxx-gpu-{contest_id}"


# Several hosts on one Redis: a submission is assigned to a host, prepared by that host's builder
# (its image in that host's engine, its code and models on that host's disk) and benchmarked by
# that host's GPU workers. `@` cannot appear in a host name (Settings.host), so no two collide.
def queue_prepare_on(host: str) -> str:
    """Preparation assigned to `host`, for its builder (before the shared QUEUE_PREPARE)."""
    return f"{QUEUE_PREPARE}@{host}"


def queue_gpu_on(contest_id: str, host: str) -> str:
    """Benchmarks prepared on `host`, for its GPU workers of the contest (before the shared one)."""
    return f"{queue_gpu(contest_id)}@{host}"


def queue_gpu_of(contest_id: str, worker: str) -> str:
    """One GPU worker's own queue (before its host's): a re-measurement belongs on the GPU whose
    baseline moved around the first measurement, next to that baseline's fresh measurement."""
    return f"{queue_gpu(contest_id)}+{worker}"


HOSTS = f"{PREFIX}:hosts"  # set: every host name a worker or builder ever published
RECOVERY_LOCK = f"{PREFIX}:host-recovery-lock"  # string with a TTL: one pass of host recovery at a time


def baseline_prepared_on(run_id: str) -> str:
    """Hash: host → the PreparedSubmission JSON of the run's baseline on that host."""
    return f"{PREFIX}:run:{run_id}:baseline-prepared"


def current_run(contest_id: str) -> str:
    """String: the id of the contest's current run."""
    return f"{PREFIX}:contest:{contest_id}:current"


def run(run_id: str) -> str:
    """String: the ContestRun JSON."""
    return f"{PREFIX}:run:{run_id}"


def run_end(run_id: str) -> str:
    """String: the RunEnd JSON, written once (SET NX) when the run ends."""
    return f"{PREFIX}:run:{run_id}:end"


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def run_keys(run_id: str) -> str:
    """SCAN pattern: every per-run key but the run itself (pruning deletes them all)."""
    return f"{PREFIX}:run:{_glob_escape(run_id)}:*"


def baseline_failures(run_id: str) -> str:
    """List: why each attempt at measuring the run's baseline failed (the run fails past a limit)."""
    return f"{PREFIX}:run:{run_id}:baseline-failures"


def weights_sets(run_id: str) -> str:
    """List: WeightsSet JSON, each time weights were set on chain from this run (newest last, capped)."""
    return f"{PREFIX}:run:{run_id}:weights-sets"


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


def baseline_pool(run_id: str, worker: str) -> str:
    """List: every BaselineMeasurement JSON `worker` made for this run, oldest first."""
    return f"{PREFIX}:run:{run_id}:baseline-pool:{worker}"


def outputs_pattern(run_id: str) -> str:
    """SCAN pattern: every `outputs` hash of the run."""
    return f"{PREFIX}:run:{_glob_escape(run_id)}:outputs:*"


def baselines(run_id: str) -> str:
    """Hash: worker name → the baseline RunResult JSON that worker measured for this run."""
    return f"{PREFIX}:run:{run_id}:baselines"


def order(run_id: str) -> str:
    """List: the order submissions were benchmarked in (for checking baseline-first)."""
    return f"{PREFIX}:run:{run_id}:order"


def hotkey_runs(hotkey: str) -> str:
    """Sorted set: run ids this hotkey appears in, scored by time."""
    return f"{PREFIX}:hotkey:{hotkey}:runs"


HOTKEY_RUNS_PATTERN = f"{PREFIX}:hotkey:*:runs"  # SCAN pattern of every hotkey_runs key


def contest_runs(contest_id: str) -> str:
    """Sorted set: the contest's run ids, scored by start time (the history, pruned by age)."""
    return f"{PREFIX}:contest:{contest_id}:runs"


RUNS = f"{PREFIX}:runs"  # sorted set: every contest's run ids, scored by start time
ENVIRONMENTS = f"{PREFIX}:environments"  # sorted set: image tag or venv path → last used (time)
HOUSEKEEPING = f"{PREFIX}:housekeeping"  # hash: host → its last HousekeepingReport JSON


def housekeeping_lock(host: str) -> str:
    """String with a TTL: one housekeeping pass at a time per host."""
    return f"{PREFIX}:housekeeping-lock:{host}"


WORKERS = f"{PREFIX}:workers"  # hash: worker name → WorkerStatus JSON (written by whoever runs the job)


def worker_alive(name: str) -> str:
    """String with a TTL: present while the worker's heartbeat is fresh."""
    return f"{WORKERS}:alive:{name}"


WORKER_BUSY = f"{PREFIX}:workers-busy"  # hash: worker name → seconds spent on jobs (float)
COUNTERS = f"{PREFIX}:counters"  # hash: counter name → integer
DURATIONS = f"{PREFIX}:durations"  # list of recent benchmark durations (seconds)
CHAIN_STATUS = f"{PREFIX}:chain:status"  # string: the chain service's ChainStatus JSON
PREFLIGHT = f"{PREFIX}:preflight"  # hash: service name → its PreflightReport JSON (start-up checks)
# String: the subnet's weights as every validator set them (SubnetWeights JSON), read from chain by
# the chain service each iteration.
SUBNET_WEIGHTS = f"{PREFIX}:chain:subnet-weights"
# List: this validator's WeightsAttempt JSON each time it set weights on chain (newest last, capped).
WEIGHTS_HISTORY = f"{PREFIX}:chain:weights-history"
# Counter: bumped by every write of run state (runs, records, results, outputs, baselines, weights),
# so an API process knows when a page it keeps is stale without reading the data again.
VERSION = f"{PREFIX}:version"


def nonce(hotkey: str, nonce_ns: int) -> str:
    """String with a TTL: a signed request's nonce, seen once (replay protection)."""
    return f"{PREFIX}:nonces:{hotkey}:{nonce_ns}"
