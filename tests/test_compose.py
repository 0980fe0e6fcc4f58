"""The README's "Run a validator", run as an operator would: a fresh copy of the checkout, `.env` from
`.env.example`, every image built here (docker-compose.local.yml: no registry), `up -d --build`, every
service healthy; then the tiny-Flux faster example enqueued over HTTP with the operator token and
scored above the baseline (API and dashboard), the worker restarted mid-benchmark with its result
landing exactly once, the sandbox container's isolation inspected, misconfigured workers saying why,
and `down` mid-benchmark leaving no sandbox behind while `up` finds every result again.

Everything runs under a project name, a node name and a data directory of its own, on a free port,
and is taken down in the end. Image builds use Docker's layer cache: the first run on a machine
builds torch's layer (minutes), later runs reuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgemaxx.constants import LABEL_OWNER, LABEL_SANDBOX
from state import keys
from tests.conftest import REPO_ROOT, TEST_DATA
from tests.service import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TOKEN = f"compose-test-{uuid.uuid4().hex}"
REDIS_PASSWORD = uuid.uuid4().hex
NODE = f"ct{uuid.uuid4().hex[:6]}"
PROJECT = f"edgemaxx-test-{NODE}"
WORKER = f"{NODE}-cpu"  # the CPU worker names itself HOSTNAME-cpu; compose sets the hostname
# Inside the containers, the examples are where the installed package keeps them.
EXAMPLES = "/opt/edgemaxx/venv/lib/python3.11/site-packages/edgemaxx/examples"
SERVICES = {"redis", "api", "builder", "chain", "worker-cpu"}


class Compose:
    """`docker compose` (v2) where installed, else `docker-compose` (v1): same files, same commands."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60).returncode == 0
        self.binary = ["docker", "compose"] if v2 else [shutil.which("docker-compose") or "docker-compose"]

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.binary, *args], cwd=self.directory, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def logs(self, service: str = "") -> str:
        return self("logs", "--no-color", "--tail", "200", *([service] if service else []), check=False).stdout


def _copy_checkout(target: Path) -> None:
    """What `git clone` gives an operator: the tracked (and not ignored) files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, check=True, capture_output=True, timeout=60).stdout
    for name in filter(None, listed.decode().split("\0")):
        path = REPO_ROOT / name
        if path.is_file() and not path.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


@pytest.fixture(scope="module")
def deployment(docker_client, base_image):
    wheelhouse = (REPO_ROOT / "wheelhouse").resolve()
    if not list(wheelhouse.glob("torch-*.whl")):
        pytest.fail("wheelhouse/ has no torch wheel for the CPU demo contest (scripts/setup fetches it)")
    root = TEST_DATA.parent / f"{TEST_DATA.name}-compose"
    shutil.rmtree(root, ignore_errors=True)
    checkout, data = root / "checkout", root / "data"
    checkout.mkdir(parents=True)
    os.chmod(root, 0o755)
    _copy_checkout(checkout)
    # This machine reaches PyPI through a TLS-intercepting proxy: its CA goes where the README says.
    for cert in Path("/usr/local/share/ca-certificates").glob("**/*.crt"):
        shutil.copy(cert, checkout / "deploy" / "ca-certificates" / cert.name)
    port = free_port()
    # `cp .env.example .env`, then this host's answers (later lines win).
    settings = {
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_PROFILES": "cpu",
        "COMPOSE_FILE": "docker-compose.yml:docker-compose.local.yml",
        "EDGEMAXX_VALIDATOR_BASE_IMAGE": base_image,
        "EDGEMAXX_FETCH_LPIPS_WEIGHTS": "0",
        "EDGEMAXX_VALIDATOR_IMAGE": "edgemaxx-validator:compose-test",
        "EDGEMAXX_BASE_IMAGE": base_image,
        "EDGEMAXX_NODE_NAME": NODE,
        "EDGEMAXX_API_PORT": str(port),
        "EDGEMAXX_DATA_DIR": str(data),
        "EDGEMAXX_WHEELHOUSE_DIR": str(wheelhouse),
        "EDGEMAXX_WALLETS": str(root / "wallets"),
        "EDGEMAXX_ADMIN_TOKEN": TOKEN,
        "EDGEMAXX_REDIS_PASSWORD": REDIS_PASSWORD,
        "EDGEMAXX_ALLOW_LOCAL_SOURCES": "1",
        "EDGEMAXX_HEALTHCHECK_INTERVAL": "10s",
        "EDGEMAXX_SANDBOX_MEMORY_MB": "2048",
        # Two shared cores: torch's OpenMP threads spin-wait when another process takes a core, which
        # can slow the faster example's tiny requests tenfold and leave it within the noise margin.
        "EDGEMAXX_SANDBOX_EXTRA_ENV": '{"OMP_NUM_THREADS": "1"}',
    }
    env_file = (checkout / ".env.example").read_text() + "".join(f"{k}={v}\n" for k, v in settings.items())
    (checkout / ".env").write_text(env_file)
    compose = Compose(checkout)
    state: dict[str, Any] = {"compose": compose, "base": f"http://127.0.0.1:{port}", "data": data,
                             "root": root, "timings": {}}
    try:
        yield state
    finally:
        compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)
        for container in docker_client.containers.list(all=True, filters={"label": LABEL_SANDBOX}):
            if container.labels.get(LABEL_OWNER, "").startswith(NODE):
                container.remove(force=True)
        for container in docker_client.containers.list(all=True, filters={"name": f"{NODE}-"}):
            container.remove(force=True)
        shutil.rmtree(root, ignore_errors=True)
        print(f"\ncompose timings: {json.dumps(state['timings'])}")


# ------------------------------------------------------------------ helpers

def _wait(predicate, timeout_s: float, what: str, compose: Compose | None = None, interval: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}\n{compose.logs() if compose else ''}")


def _health(docker_client) -> dict[str, str]:
    found = {}
    project = {"label": f"com.docker.compose.project={PROJECT}"}
    for container in docker_client.containers.list(all=True, filters=project):
        state = docker_client.api.inspect_container(container.id)["State"]
        service = container.labels["com.docker.compose.service"]
        found[service] = state.get("Health", {}).get("Status", "none") if state["Running"] else state["Status"]
    return found


def _all_healthy(docker_client) -> bool:
    health = _health(docker_client)
    return set(health) == SERVICES and all(status == "healthy" for status in health.values())


def _get(state, path: str) -> Any:
    try:
        response = httpx.get(state["base"] + path, timeout=10)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _submit(state, hotkey: str, example: str, uid: int, token: str = TOKEN) -> httpx.Response:
    return httpx.post(state["base"] + "/v1/submissions", timeout=10, headers={"Authorization": f"Bearer {token}"},
                      json={"hotkey": hotkey, "repository": f"{EXAMPLES}/{example}", "contest": "demo-cpu",
                            "uid": uid, "block": uid})


def _final(state, hotkey: str) -> dict | None:
    record = _get(state, f"/v1/submissions/{hotkey}")
    return record if record and record["state"] in ("scored", "invalid") else None


def _running_sandbox(docker_client):
    containers = docker_client.containers.list(filters={"label": f"{LABEL_OWNER}={WORKER}"})
    return containers[0] if containers else None


def _landings(state, run_id: str) -> list[str]:
    out = state["compose"]("exec", "-T", "redis", "redis-cli", "LRANGE", keys.landings(run_id), "0", "-1").stdout
    return out.split()


# ------------------------------------------------------------------ the operator's session

def test_up_builds_everything_and_every_service_turns_healthy(deployment, docker_client):
    compose = deployment["compose"]
    started = time.monotonic()
    compose("up", "-d", "--build", timeout=2400)
    built = time.monotonic()
    _wait(lambda: _all_healthy(docker_client), 300, "every service healthy", compose)
    deployment["timings"].update(up_build_s=round(built - started, 1),
                                 up_to_healthy_s=round(time.monotonic() - built, 1))

    status = _get(deployment, "/v1/status")
    assert status["redis"] is True and status["healthy"] is True
    alive = {w["name"]: w for w in status["workers"] if w["alive"]}
    assert {f"{NODE}-builder", WORKER} <= set(alive)
    assert alive[WORKER]["gpu"] is None and alive[WORKER]["kind"] == "gpu"
    # No chain endpoint reachable and no wallet here: the chain service stays up and says why.
    chain = status["chain"]
    assert chain["consecutive_errors"] >= 1 and "connect" in chain["error"]
    assert "no weights can be set" in chain["wallet_error"]
    assert "no weights can be set" in compose.logs("chain")
    # The image was built without LPIPS's backbone: flux-4090 cannot be scored, and the worker says so.
    reports = {r["service"]: r for r in status["preflight"]}
    assert reports[WORKER]["problems"] == []
    assert reports[WORKER]["warnings"][0].startswith("flux-4090: LPIPS is unavailable")
    assert "flux-4090: LPIPS is unavailable" in compose.logs("worker-cpu")
    ps = compose("ps").stdout
    assert ps.count("(healthy)") == len(SERVICES), ps


def test_faster_example_scores_above_the_baseline_through_a_worker_restart(deployment, docker_client):
    compose = deployment["compose"]
    assert _submit(deployment, "hk-faster", "flux-faster", 11, token="wrong").status_code == 401
    accepted = _submit(deployment, "hk-faster", "flux-faster", 11)
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]

    # Mid-benchmark: the worker's sandbox container is running. Inspect it, then restart the worker.
    sandbox = _wait(lambda: _running_sandbox(docker_client), 600, "the worker's sandbox container", compose, 0.2)
    sandbox.reload()
    host, config = sandbox.attrs["HostConfig"], sandbox.attrs["Config"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert config["User"] == "10001:10001" and not host.get("Privileged")
    assert not host.get("DeviceRequests"), "the CPU worker asks for no GPU"
    mounts = {m["Destination"]: m for m in sandbox.attrs["Mounts"]}
    assert set(mounts) == {"/app", "/models"} and mounts["/models"]["RW"] is False
    assert mounts["/app"]["Source"].startswith(str(deployment["data"] / "runs")), "host paths, as outside"
    assert not any(k.startswith("EDGEMAXX") for k in (e.split("=", 1)[0] for e in config["Env"]))
    compose("restart", "worker-cpu", timeout=120)
    assert "stopping the job in flight to requeue it" in compose.logs("worker-cpu")

    record = _wait(lambda: _final(deployment, "hk-faster"), 900, "hk-faster to be scored", compose, 2)
    assert record["state"] == "scored", record
    assert "requeued" in compose.logs("worker-cpu")
    assert _landings(deployment, run_id) == ["hk-faster"], "the result lands exactly once"

    contest = _get(deployment, "/v1/contests/demo-cpu")
    assert contest["run_id"] == run_id and contest["baselines"]
    row = next(r for r in contest["leaderboard"] if r["hotkey"] == "hk-faster")
    assert row["state"] == "scored" and row["score"] > 1.0, (
        f"the faster example beats the baseline (1.0): {row}\n{contest['baselines']}\n{compose.logs('worker-cpu')}")
    assert row["similarity_min"] > 0.99
    # The dashboard is this page over that JSON.
    page = httpx.get(deployment["base"] + "/", timeout=10)
    assert page.status_code == 200 and "/static/leaderboard.js" in page.text
    script = httpx.get(deployment["base"] + "/static/leaderboard.js", timeout=10)
    assert script.status_code == 200 and "/v1/runs/" in script.text
    deployment["hk-faster"] = row
    deployment["hk-faster-run"] = run_id


def test_misconfigured_workers_say_why(deployment, docker_client):
    """Each mistake, one line in the worker's log and in /v1/status; the worker waits, no crash loop."""
    data = str(deployment["data"])
    image = "edgemaxx-validator:compose-test"
    network = f"{PROJECT}_default"
    base_env = {"EDGEMAXX_REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis:6379/0", "EDGEMAXX_SANDBOX_BACKEND": "docker",
                "EDGEMAXX_DATA_DIR": data}
    socket = {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}}
    cases = {
        "nosock": ({"user": "0:0", "volumes": {data: {"bind": data, "mode": "rw"}}}, [],
                   "no Docker socket at /var/run/docker.sock"),
        "datadir": ({"user": "0:0", "volumes": {**socket, data: {"bind": "/var/lib/edgemaxx", "mode": "rw"}},
                     "environment": {**base_env, "EDGEMAXX_DATA_DIR": "/var/lib/edgemaxx"}}, [],
                    f"/var/lib/edgemaxx is {data} on the host"),
        "gpu": ({"user": "0:0", "volumes": {**socket, data: {"bind": data, "mode": "rw"}}}, ["--gpu", "5"],
                "GPU 5"),
        "user": ({"volumes": {**socket, data: {"bind": data, "mode": "rw"}}}, [],
                 "this worker runs as uid 10000, but it must be root"),
        "redis": ({"user": "0:0", "environment": {**base_env, "EDGEMAXX_REDIS_URL": "redis://nowhere.invalid:6379/0"}},
                  [], "Redis at redis://nowhere.invalid:6379/0 unreachable"),
    }
    started = {}
    try:
        for case, (options, args, _) in cases.items():
            name = f"{NODE}-{case}"
            options = {"environment": base_env, **options}
            started[case] = docker_client.containers.run(image, ["worker", "--name", name, *args], name=name,
                                                         network=network, detach=True, **options)
        for case, (_, _, expected) in cases.items():
            container = started[case]
            _wait(lambda c=container, e=expected: e in c.logs().decode(), 120, f"{case}: {expected!r}")
        time.sleep(2)
        status = _get(deployment, "/v1/status")
        reports = {r["service"]: r for r in status["preflight"]}
        for case, (_, _, expected) in cases.items():
            container = started[case]
            container.reload()
            log = container.logs().decode()
            assert container.status == "running", f"{case}: it waits instead of exiting"
            assert "Traceback" not in log, f"{case}:\n{log}"
            assert len([line for line in log.splitlines() if expected in line]) == 1, f"{case}: said once\n{log}"
            if case != "redis":  # with Redis unreachable, the log (and the healthcheck) is all there is
                assert expected in reports[f"{NODE}-{case}"]["problems"][0]
        health = started["gpu"].exec_run(["edgemaxx", "healthcheck", "worker", "--name", f"{NODE}-gpu"])
        assert health.exit_code == 1 and b"cannot start: GPU 5" in health.output
        health = started["redis"].exec_run(["edgemaxx", "healthcheck", "worker", "--name", f"{NODE}-redis"])
        assert health.exit_code == 1 and b"unreachable" in health.output
    finally:
        for container in started.values():
            container.remove(force=True)
        names = [f"{NODE}-{case}" for case in cases]
        deployment["compose"]("exec", "-T", "redis", "redis-cli", "HDEL", keys.PREFLIGHT, *names, check=False)


def test_down_mid_benchmark_leaves_no_sandbox_and_up_keeps_every_result(deployment, docker_client):
    compose = deployment["compose"]
    accepted = _submit(deployment, "hk-down", "flux-faster", 12)
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    _wait(lambda: _running_sandbox(docker_client), 600, "hk-down's sandbox container", compose, 0.2)
    compose("down", timeout=300)
    leftovers = [c.name for c in docker_client.containers.list(all=True, filters={"label": LABEL_SANDBOX})
                 if c.labels.get(LABEL_OWNER, "").startswith(NODE)]
    assert leftovers == [], "down leaves no sandbox container behind"
    assert not docker_client.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})

    started = time.monotonic()
    compose("up", "-d", timeout=600)
    _wait(lambda: _all_healthy(docker_client), 300, "every service healthy again", compose)
    deployment["timings"]["up_again_to_healthy_s"] = round(time.monotonic() - started, 1)
    # hk-faster's run ended when its last submission was final, so hk-down opened a new one: the
    # first is in the history, unchanged.
    earlier = _get(deployment, f"/v1/runs/{deployment['hk-faster-run']}")
    before = deployment["hk-faster"]
    row = next(r for r in earlier["leaderboard"] if r["hotkey"] == "hk-faster")
    assert (row["state"], row["score"], row["summary"]) == (before["state"], before["score"], before["summary"])
    record = _wait(lambda: _final(deployment, "hk-down"), 900, "hk-down to be scored after up", compose, 2)
    assert record["state"] == "scored", record
    expected = ["hk-down", "hk-faster"] if run_id == deployment["hk-faster-run"] else ["hk-down"]
    assert sorted(_landings(deployment, run_id)) == expected, "each result landed once"
    assert _landings(deployment, deployment["hk-faster-run"]).count("hk-faster") == 1
