"""Housekeeping: disk and Redis stay bounded; what the runs need is never removed.

Real parts: a redis-server, the Docker engine (images built here, labelled as sandbox images are),
files on disk in Hugging Face's cache layout. Runs are made and ended by the service's own code
(`start_run`, the state functions the jobs call, `settle`); time is simulated by passing `now`.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis

from edgemaxx.constants import LABEL_IMAGE_KEY
from edgemaxx.contest import load_contest
from edgemaxx.models import (
    Backend,
    Metrics,
    ModelSpec,
    PreparedSubmission,
    RunResult,
    RunStatus,
    SourceKind,
    SubmissionSource,
)
from edgemaxx.settings import Settings
from state import history, housekeeping, keys, runs
from state.records import RunState, SubmissionRecord, SubmissionState, WeightsSet
from tests.conftest import TEST_DATA
from tests.service import RedisServer
from worker import lifecycle, queues
from worker.housekeeping import MARKER, model_dir_name, run_housekeeping

MIB = 2**20
DAY = 86400.0


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis(redis_server):
    return Redis.from_url(redis_server.url)


@pytest.fixture
def data_dir():
    path = TEST_DATA / f"housekeeping-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _settings(data_dir: Path, **overrides) -> Settings:
    values = {"data_dir": data_dir, "housekeeping_grace_s": 3600.0, "history_days": 7.0, "disk_min_free_gb": 0.0,
              **overrides}
    return Settings(**values)


def _prepared(name: str, environment: str, models: list[str] = (), code_dir: Path | None = None) -> PreparedSubmission:
    return PreparedSubmission(
        name=name, source=SubmissionSource(kind=SourceKind.LOCAL, path=Path(f"/src/{name}")),
        code_dir=code_dir or Path(f"/src/{name}"), backend=Backend.PROCESS, environment=environment,
        models=[ModelSpec(repository=m, revision="0" * 40) for m in models])


def _record(hotkey: str, uid: int, state: SubmissionState, prepared: PreparedSubmission | None = None,
            score: float | None = None) -> SubmissionRecord:
    return SubmissionRecord(hotkey=hotkey, uid=uid, block=uid, state=state, prepared=prepared, score=score,
                            source=SubmissionSource(kind=SourceKind.GIT, url=f"https://github.com/{hotkey}/flux",
                                                    revision=f"{uid:07x}"))


def _start(redis: Redis, settings: Settings, seed: str, started_at: float | None = None):
    return queues.start_run(redis, settings, load_contest("demo-cpu"), seed, started_at=started_at)


def _put(redis: Redis, run, record: SubmissionRecord, outputs: list[bytes | None] | None = None) -> None:
    runs.save_record(redis, run.id, record)
    if record.state.final:
        if outputs is not None:
            runs.save_outputs(redis, run.id, record.hotkey, outputs)
        runs.land_result(redis, run.id, record)


def _baseline(redis: Redis, run, worker: str = "gpu0") -> None:
    result = RunResult(name="baseline", backend=Backend.PROCESS, status=RunStatus.OK,
                       metrics=Metrics(generation_times_s=[1.0]))
    result.outputs = [b"x" * 1000] * len(run.inputs)
    runs.save_baseline(redis, run.id, worker, result)


def _model(cache: Path, repository: str, size_mib: int, last_used: float) -> Path:
    """A model in Hugging Face's cache layout: a blob and a snapshot symlink to it (sparse file)."""
    root = cache / model_dir_name(repository)
    blob = root / "blobs" / uuid.uuid4().hex
    blob.parent.mkdir(parents=True)
    with blob.open("wb") as handle:
        handle.truncate(size_mib * MIB)
    snapshot = root / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(blob)
    (root / MARKER).touch()
    os.utime(root / MARKER, (last_used, last_used))
    os.utime(root, (last_used, last_used))
    return root


def test_model_cache_eviction_keeps_exactly_what_the_queue_needs(redis, data_dir):
    now = time.time()
    settings = _settings(data_dir, models_cache_max_gb=65 * MIB / 2**30)
    cache = settings.models_cache
    # The current run: its baseline, one submission waiting for a GPU, one benchmarking, one done.
    run = _start(redis, settings, "models")
    run.baseline_prepared = _prepared("baseline", "/env/base", ["org/baseline-model"])
    runs.save_run(redis, run)
    _put(redis, run, _record("hk-waiting", 1, SubmissionState.PREPARED, _prepared("w", "/env/w", ["org/waiting"])))
    _put(redis, run, _record("hk-running", 2, SubmissionState.BENCHMARKING, _prepared("r", "/env/r", ["org/running"])))
    _put(redis, run, _record("hk-done", 3, SubmissionState.SCORED, _prepared("d", "/env/d", ["org/done"]), 1.1))
    ages = {"org/baseline-model": 9, "org/waiting": 8, "org/running": 7, "org/done": 6,  # days since last use
            "org/old": 5, "org/older": 5.5, "org/recent": 2, "org/yesterday": 1}
    for repository, days in ages.items():
        _model(cache, repository, 10, now - days * DAY)
    _model(cache, "org/just-fetched", 10, now - 60)  # a download may be under way: within the grace period

    report = run_housekeeping(redis, settings, None, now=now)

    left = {p.name for p in cache.iterdir() if p.name.startswith("models--")}
    needed = {model_dir_name(m) for m in ("org/baseline-model", "org/waiting", "org/running")}
    # 90 MiB over a 65 MiB cap: the least recently used unneeded models go first, down to the cap.
    assert report.evicted_models == [model_dir_name(m) for m in ("org/done", "org/older", "org/old")]
    assert left == needed | {model_dir_name(m) for m in ("org/recent", "org/yesterday", "org/just-fetched")}
    assert report.models_bytes == 60 * MIB and report.models_cap_bytes == 65 * MIB
    assert not report.warnings

    # A cap below what the queue needs: everything else goes, the needed models stay.
    tight = settings.model_copy(update={"models_cache_max_gb": 5 * MIB / 2**30, "housekeeping_grace_s": 0.0})
    report = run_housekeeping(redis, tight, None, now=now)
    assert {p.name for p in cache.iterdir() if p.name.startswith("models--")} == needed
    assert report.models_bytes == 30 * MIB and "the current run needs it" in report.warnings[-1]


def _image(client, base: str, tag: str) -> str:
    dockerfile = f"FROM {base}\nLABEL {LABEL_IMAGE_KEY}={tag.rsplit(':', 1)[-1]}\n".encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    return tag


def test_unused_images_and_venvs_are_removed_and_others_images_are_not(redis, data_dir, docker_client, base_image):
    import docker.errors

    now = time.time()
    settings = _settings(data_dir)
    prefix = f"edgemaxx-sandbox:hk-{uuid.uuid4().hex[:8]}"
    images = {name: _image(docker_client, base_image, f"{prefix}-{name}") for name in
              ("older-run", "previous-run", "current-run", "unused", "foreign")}
    envs = {}
    for name in ("older-run", "previous-run", "current-run", "unused"):
        envs[name] = settings.envs_dir / f"hk{name}"
        envs[name].mkdir(parents=True)
        (envs[name] / ".complete").write_text("")
    try:
        # Three runs of the contest: the oldest two ended (one failed), the last is current.
        for name, seed in (("older-run", "a"), ("previous-run", "b"), ("current-run", "c")):
            run = _start(redis, settings, seed, started_at=now - {"a": 3, "b": 2, "c": 1}[seed] * DAY)
            run.baseline_prepared = _prepared("baseline", images[name])
            runs.save_run(redis, run)
            _put(redis, run, _record("hk-1", 1, SubmissionState.PREPARED, _prepared("s", str(envs[name]))))
            if name != "current-run":
                lifecycle.fail_run(redis, run.id, "test", now=run.started_at + 3600)
        # Everything but the foreign image was noted by this validator's jobs, two days ago.
        used = [images[n] for n in ("older-run", "previous-run", "current-run", "unused")]
        housekeeping.note_environments(redis, used + [str(p) for p in envs.values()], when=now - 2 * DAY)

        report = run_housekeeping(redis, settings, docker_client, now=now)

        assert sorted(report.removed_environments) == sorted(
            [images["older-run"], images["unused"], str(envs["older-run"]), str(envs["unused"])])
        present = {t for i in docker_client.images.list(filters={"label": LABEL_IMAGE_KEY}) for t in i.tags}
        assert {images["previous-run"], images["current-run"], images["foreign"]} <= present
        assert not {images["older-run"], images["unused"]} & present
        assert sorted(p.name for p in settings.envs_dir.iterdir()) == ["hkcurrent-run", "hkprevious-run"]
        assert set(housekeeping.known_environments(redis)) == {
            images["previous-run"], images["current-run"], str(envs["previous-run"]), str(envs["current-run"])}
    finally:
        for tag in images.values():
            try:
                docker_client.images.remove(tag)
            except docker.errors.ImageNotFound:
                pass


def test_old_run_dirs_and_unused_clones_go(redis, data_dir):
    now = time.time()
    settings = _settings(data_dir, job_timeout_s=600)
    old_run, fresh_run = settings.runs_dir / "w-dead-1", settings.runs_dir / "w-live-2"
    for path in (old_run / "app" / "src", fresh_run / "app"):
        path.mkdir(parents=True)
    (old_run / "app" / "src" / "main.py").write_text("x")
    os.chmod(old_run / "app" / "src", 0o555)  # sealed, as a run's code copy is
    os.utime(old_run, (now - 7200, now - 7200))
    clones = {}
    for name in ("used", "unused", "clone-tmp"):
        clones[name] = settings.repos_dir / name
        clones[name].mkdir(parents=True)
        settings.repos_dir.joinpath(name + ".commit").write_text("abc\n")
        os.utime(clones[name], (now - 2 * DAY, now - 2 * DAY))
    run = _start(redis, settings, "clones")
    _put(redis, run, _record("hk-1", 1, SubmissionState.PREPARED, _prepared("s", "/env/s", code_dir=clones["used"])))

    report = run_housekeeping(redis, settings, None, now=now)

    assert report.removed_run_dirs == 1 and not old_run.exists() and fresh_run.exists()
    assert clones["used"].exists() and not clones["unused"].exists() and not clones["clone-tmp"].exists()
    assert not settings.repos_dir.joinpath("unused.commit").exists()


def test_redis_stays_bounded_over_many_days_of_runs(redis, data_dir):
    settings = _settings(data_dir, history_days=7.0)
    start = time.time() - 60 * DAY
    sizes = []
    for day in range(45):
        t = start + day * DAY
        run = _start(redis, settings, f"day-{day}", started_at=t)
        hotkeys = ["hk-a", "hk-b", "hk-c", f"hk-once-{day}"]  # three regulars, one newcomer a day
        for uid, hotkey in enumerate(hotkeys):
            queues.submit(redis, settings, run, hotkey, SubmissionSource(
                kind=SourceKind.GIT, url=f"https://github.com/{hotkey}/flux", revision="abcdef0"), uid=uid, block=uid)
        _baseline(redis, run)
        for uid, hotkey in enumerate(hotkeys[:3]):
            record = runs.load_record(redis, run.id, hotkey)
            record.state, record.score, record.prepared = SubmissionState.SCORED, 1.0 + uid / 10, _prepared(
                hotkey, f"/env/{day}")
            _put(redis, run, record, [bytes([uid]) * 2000] * len(run.inputs))
        runs.drop_submission(redis, run.id, f"hk-once-{day}")  # it deregistered mid-run
        end = lifecycle.settle(redis, run.id, now=t + 2 * 3600)
        assert end is not None and end.state is RunState.FINISHED
        for block in range(3):  # the chain service sets weights from it a few times
            history.record_weights_set(redis, run.id, WeightsSet(block=day * 7200 + block, at=t, weights=end.weights))
        run_housekeeping(redis, settings, None, now=t + 3 * 3600)
        sizes.append(redis.dbsize())

    # After the history window fills, the key count stops growing: every per-run key, queued or
    # scheduled job, hotkey reference and output image of a pruned run went with it.
    window = int(settings.history_days) + 1
    assert max(sizes[window + 2:]) <= max(sizes[window - 1:window + 2]), sizes
    assert len(set(sizes[window + 2:])) == 1, sizes
    ids, total = history.run_ids(redis, "demo-cpu", 0, 100)
    assert total <= window and len(ids) == total
    # Output images: an ended run keeps only its best submissions' and their baseline's (the
    # dashboard's history), and a pruned run none.
    outputs = {k.decode() for k in redis.scan_iter(match=keys.PREFIX + ":run:*:outputs:*")}
    assert outputs, "runs in the history window keep their best images"
    assert {k.split(":run:", 1)[1].split(":outputs:", 1)[0] for k in outputs} <= set(ids)
    for run_id in ids:
        assert set(runs.output_names(redis, run_id)) <= {"hk-a", "hk-b", "hk-c", "baseline@gpu0"}
    hotkey_keys = {k.decode() for k in redis.scan_iter(match=keys.HOTKEY_RUNS_PATTERN)}
    assert hotkey_keys == {keys.hotkey_runs(h) for h in ("hk-a", "hk-b", "hk-c")}
    assert all(redis.zcard(k) <= window for k in hotkey_keys)
    assert not list(redis.scan_iter(match="rq:job:*")), "the ended runs' jobs were cancelled"
    # The run weights come from is kept, however old, when nothing newer finished.
    assert history.weights_source(redis, "demo-cpu").id == ids[0]


def test_a_run_weights_come_from_is_never_pruned(redis, data_dir):
    settings = _settings(data_dir, history_days=1.0)
    t = time.time() - 30 * DAY
    run = _start(redis, settings, "lonely", started_at=t)
    _put(redis, run, _record("hk-a", 1, SubmissionState.SCORED, _prepared("a", "/env/a"), 1.2), [b"a"] * 6)
    _baseline(redis, run)
    assert lifecycle.settle(redis, run.id, now=t + 60).weights == {1: 1.0}
    failed = _start(redis, settings, "failed-later", started_at=t + DAY)
    lifecycle.fail_run(redis, failed.id, "the baseline could not be measured", now=t + DAY + 60)

    report = run_housekeeping(redis, settings, None, now=time.time())

    assert report.pruned_runs == []  # the failed run is current; the old one sets the weights
    assert history.weights_source(redis, "demo-cpu").id == run.id


def test_low_disk_is_reported_in_status(redis_server, redis, data_dir):
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = _settings(data_dir, disk_min_free_gb=10.0**9)  # no disk has a billion GiB free
    report = run_housekeeping(redis, settings, None)
    assert report.disk and all(d.low for d in report.disk)
    api_settings = settings.model_copy(update={"redis_url": redis_server.url})
    with TestClient(create_app(api_settings)) as client:
        status = client.get("/v1/status").json()
    assert status["disk_low"] is True
    assert any("disk low under" in w and "EDGEMAXX_DISK_MIN_FREE_GB" in w for w in status["warnings"])
    assert status["housekeeping"][0]["disk"][0]["free_bytes"] > 0
