"""The chain service driving the real bittensor SDK against an in-process fake chain."""

from __future__ import annotations

import datetime as dt
import math
import struct

import bittensor as bt
import pytest
from redis import Redis
from rq import Queue

from chain.commitments import Commitment, CommitmentRecord, encode
from chain.schedule import run_start
from chain.service import ChainService
from edgemaxx.contest import load_contest
from edgemaxx.inputs import inputs
from edgemaxx.models import Metrics, RunResult, RunStatus
from edgemaxx.settings import Settings
from state import history, keys
from state import runs as store
from state.records import SubmissionState
from tests.chain.fake_chain import BLOCK_MS, GENESIS_MS, FakeChain
from tests.conftest import TEST_DATA
from tests.service import RedisServer

NETUID = 39
CONTEST = load_contest("flux-4090")


def _commitment(owner_repo: str, revision: str, contest: int = 0, provider: str = "github.com") -> bytes:
    return encode(Commitment(records=[CommitmentRecord(provider=provider, repository=owner_repo,
                                                       revision=revision, contest=contest)]))


@pytest.fixture
def redis_url(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server.url
    server.kill()


@pytest.fixture
def world(tmp_path, redis_url):
    """A fake chain 3 hours after a contest start, a validator wallet, a service."""
    chain = FakeChain(NETUID)
    now = dt.datetime.fromtimestamp(chain.timestamp_ms(chain.head) / 1000, dt.UTC)
    start = run_start(CONTEST, now)
    start_block = math.ceil((start.timestamp() * 1000 - GENESIS_MS) / BLOCK_MS)
    wallet = bt.Wallet("validator", "hot", path=str(tmp_path / "wallets"))
    wallet.create_new_hotkey(suppress=True)
    validator_uid = chain.register(wallet.hotkey.ss58_address, "validator-cold")
    blacklist = tmp_path / "blacklist.toml"
    blacklist.write_text('hotkeys = ["hk-banned"]\ncoldkeys = ["cold-banned"]\n')
    settings = Settings(redis_url=redis_url, data_dir=TEST_DATA, netuid=NETUID, active_contests=["flux-4090"],
                        blacklist_file=blacklist, weights_interval_blocks=10, chain_poll_blocks=1)
    redis = Redis.from_url(redis_url)
    service = ChainService(settings, redis, lambda: bt.Subtensor(substrate=chain), wallet,
                           clock=lambda: chain.timestamp_ms(chain.head) / 1000)
    return {"chain": chain, "start_block": start_block, "service": service, "redis": redis,
            "validator_uid": validator_uid, "settings": settings}


def test_commitments_become_queued_submissions(world):
    chain, start_block = world["chain"], world["start_block"]
    before = start_block - 50
    miners = {}
    for hotkey, cold in [("hk-a", "c1"), ("hk-dup-repo", "c2"), ("hk-dup-rev", "c3"), ("hk-banned", "c4"),
                         ("hk-cold-banned", "cold-banned"), ("hk-baseline", "c6"), ("hk-garbage", "c7"),
                         ("hk-late", "c8"), ("hk-b", "c9")]:
        miners[hotkey] = chain.register(hotkey, cold)
    chain.commit("hk-a", _commitment("alice/flux", "1111111"), before)
    chain.commit("hk-dup-repo", _commitment("Alice/flux", "2222222"), before + 5)
    chain.commit("hk-dup-rev", _commitment("carol/flux", "1111111"), before + 6)
    chain.commit("hk-banned", _commitment("dave/flux", "3333333"), before)
    chain.commit("hk-cold-banned", _commitment("erin/flux", "4444444"), before)
    chain.commit("hk-baseline", _commitment("womboai/flux-schnell-edge-inference", "2cff82c"), before)
    chain.commit("hk-garbage", struct.pack(">H", 7) + b"junk", before)
    chain.commit("hk-late", _commitment("frank/flux", "5555555"), start_block + 10)
    chain.commit("hk-b", _commitment("bob/flux", "6666666"), before + 1)
    chain.commit("hk-unregistered", _commitment("gina/flux", "7777777"), before)

    service = world["service"]
    service.step()

    redis = world["redis"]
    run = store.current_run(redis, "flux-4090")
    assert run is not None
    # The seed is the hash of the first block at or after the scheduled start.
    assert run.block == start_block and run.seed == chain.block_hash_of(start_block)
    assert run.inputs == inputs(CONTEST, chain.block_hash_of(start_block))
    records = {r.hotkey: r for r in store.records(redis, run.id)}
    assert set(records) == {"hk-a", "hk-b"}
    assert records["hk-a"].source.url == "https://github.com/alice/flux"
    assert records["hk-a"].source.revision == "1111111"
    assert records["hk-a"].uid == miners["hk-a"] and records["hk-a"].block == before
    assert records["hk-a"].state is SubmissionState.QUEUED
    status = service.status
    assert status.dropped["hk-dup-repo"].startswith("duplicate of hk-a")
    assert status.dropped["hk-dup-rev"].startswith("duplicate of hk-a")
    assert status.dropped["hk-banned"] == status.dropped["hk-cold-banned"] == "blacklisted"
    assert status.dropped["hk-baseline"] == "submits the baseline itself"
    assert status.dropped["hk-unregistered"] == "not registered"
    assert "spec version 7" in status.rejected["hk-garbage"]
    # Baseline first, then both submissions, on the prepare queue.
    queue = Queue(keys.QUEUE_PREPARE, connection=redis)
    assert queue.count == 3
    assert queue.jobs[0].func_name.endswith("prepare_baseline")

    # A second pass adds nothing; a deregistered hotkey leaves the run.
    service.step()
    assert queue.count == 3
    chain.deregister("hk-b")
    service.step()
    assert {r.hotkey for r in store.records(redis, run.id)} == {"hk-a"}


def _finish_run(world, scores: dict[str, tuple[int, float]]):
    """Put a finished run in Redis: a baseline and scored records, as GPU workers would."""
    from edgemaxx.models import SourceKind, SubmissionSource
    from state.records import SubmissionRecord

    redis, chain = world["redis"], world["chain"]
    world["service"].step()  # creates the current run
    run = store.current_run(redis, "flux-4090")
    baseline = RunResult(name="baseline", backend="process", status=RunStatus.OK,
                         metrics=Metrics(generation_times_s=[1.0]))
    baseline.outputs = [None] * len(run.inputs)
    store.save_baseline(redis, run.id, "gpu0", baseline)
    for index, (hotkey, (uid, score)) in enumerate(scores.items()):
        record = SubmissionRecord(hotkey=hotkey, uid=uid, block=index,
                                  source=SubmissionSource(kind=SourceKind.GIT, url=f"https://github.com/{hotkey}/f",
                                                          revision=f"{index:07d}"),
                                  state=SubmissionState.SCORED, score=score)
        store.save_record(redis, run.id, record)
        store.land_result(redis, run.id, record)
        chain.register(hotkey, f"cold-{hotkey}")
    return run


def test_weights_set_with_version_key_and_rate_limit_survived(world):
    chain, service = world["chain"], world["service"]
    chain.storage[("SubtensorModule", "WeightsVersionKey", (NETUID,))] = 12345
    _finish_run(world, {"m1": (1, 1.5), "m2": (2, 1.25), "m3": (3, 0.8)})
    chain.head += 1
    service.step()
    sets = [call for call, _ in chain.submitted if call.function == "set_mechanism_weights"]
    assert len(sets) == 1
    params = sets[0].params
    assert params["version_key"] == 12345 and params["netuid"] == NETUID
    weights = dict(zip(params["dests"], params["weights"], strict=True))
    assert set(weights) == {1, 2} and weights[1] == 65535 and abs(weights[2] / 65535 - 0.5) < 1e-3
    assert service.status.last_weights.ok and service.status.last_weights.version_key == 12345

    # The chain's rate limit: the SDK refuses before signing; the service says so and retries later.
    chain.storage[("SubtensorModule", "WeightsSetRateLimit", (NETUID,))] = 100
    chain.head += 10
    service.step()
    assert not service.status.last_weights.ok
    assert "rate limit" in service.status.last_weights.message.lower()
    assert len([c for c, _ in chain.submitted if c.function == "set_mechanism_weights"]) == 1
    chain.head += 100
    service.step()
    assert service.status.last_weights.ok
    assert len([c for c, _ in chain.submitted if c.function == "set_mechanism_weights"]) == 2


def test_no_weights_before_a_baseline_exists(world):
    world["service"].step()
    assert world["service"].status.last_weights.ok is False
    assert "no finished run with a baseline" in world["service"].status.last_weights.message
    assert not world["chain"].submitted


def test_dropped_connection_does_not_kill_the_loop(world):
    chain, service, redis = world["chain"], world["service"], world["redis"]
    chain.fail_next = [ConnectionError("connection reset by peer"), TimeoutError("no answer")]
    delays = []
    service.run(max_iterations=4, sleep=delays.append)
    assert delays[:2] == [2.0, 4.0], "exponential backoff after each failure"
    assert service.status.consecutive_errors == 0 and service.status.error == ""
    assert chain.connects >= 2, "a failure reconnects"
    from state.chain import load_chain_status

    published = load_chain_status(redis)
    assert published is not None
    assert published.block == chain.head and published.runs["flux-4090"]
    # The API shows it.
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(world["settings"])) as client:
        chain_status = client.get("/v1/status").json()["chain"]
    assert chain_status["block"] == chain.head
    assert chain_status["last_weights"]["message"].startswith("no finished run")


def test_published_commitment_reads_back(world):
    """The miner's publish path and the validator's read path agree through the real SDK."""
    from chain.commitments import decode
    from chain.publish import publish_commitment
    from chain.reader import commitment_bytes

    chain = world["chain"]
    miner = bt.Wallet("miner", "hot", path=str(world["settings"].data_dir / "test-wallets"))
    miner.create_new_hotkey(suppress=True, overwrite=True)
    chain.register(miner.hotkey.ss58_address, "miner-cold")
    data = _commitment("miner/flux-fast", "abcdef0")
    sub = bt.Subtensor(substrate=chain)
    result = publish_commitment(sub, miner, NETUID, data)
    assert result.success
    commitments = sub.subnets.commitments(NETUID)
    stored = commitments[miner.hotkey.ss58_address]
    assert commitment_bytes(stored.fields) == data
    assert decode(commitment_bytes(stored.fields)).records[0].url == "https://github.com/miner/flux-fast"
    assert stored.block == chain.head


def test_revision_must_be_pushed(tmp_path):
    from chain.publish import check_revision
    from edgemaxx.errors import SubmissionError
    from tests.gitserver import HttpsGitServer, commit_tree

    server = HttpsGitServer(tmp_path / "git")
    try:
        work = tmp_path / "work"
        work.mkdir()
        (work / "a.txt").write_text("a")
        first = commit_tree(work, "first")
        (work / "a.txt").write_text("b")
        second = commit_tree(work, "second")
        url = server.publish(work, "repo")
        commit, ref = check_revision(url, second[:7], ca_bundle=str(server.cert))
        assert commit == second and ref in ("HEAD", "refs/heads/main")
        with pytest.raises(SubmissionError, match="not the tip of any branch or tag"):
            check_revision(url, first[:7], ca_bundle=str(server.cert))
        # The CLI refuses before touching the chain.
        import os
        import subprocess
        import sys

        env = {**os.environ, "EDGEMAXX_ALLOW_PRIVATE_HOSTS": "1", "EDGEMAXX_EXTRA_CA_BUNDLE": str(server.cert)}
        cli = subprocess.run([sys.executable, "-m", "cli", "submit", "--repository", url,
                              "--revision", first[:7], "--yes"], capture_output=True, text=True, env=env, timeout=120)
        assert cli.returncode == 1 and "not the tip of any branch or tag" in cli.stderr
    finally:
        server.close()


def test_a_restarted_service_sets_weights_from_the_persisted_run(world):
    """The finished run lives in Redis, not in the service: a new service sets weights at once."""
    chain, redis = world["chain"], world["redis"]
    run = _finish_run(world, {"m1": (1, 1.5), "m2": (2, 1.25)})
    chain.head += 1
    world["service"].step()
    assert len([c for c, _ in chain.submitted if c.function == "set_mechanism_weights"]) == 1

    restarted = ChainService(world["settings"], redis, lambda: bt.Subtensor(substrate=chain), world["service"].wallet,
                             clock=lambda: chain.timestamp_ms(chain.head) / 1000)
    chain.head += 1  # well inside the interval the first service counted
    restarted.step()
    sets = [c for c, _ in chain.submitted if c.function == "set_mechanism_weights"]
    assert len(sets) == 2 and sets[1].params == sets[0].params
    assert restarted.status.last_set.run_id == run.id
    assert restarted.status.next_weights_block == chain.head + world["settings"].weights_interval_blocks
    assert [s.block for s in history.weights_sets(redis, run.id)] == [chain.head - 1, chain.head]


def test_weights_follow_hotkeys_not_uids(world):
    """A hotkey that deregistered earns nothing from the run it finished: its uid is someone else's."""
    chain = world["chain"]
    _finish_run(world, {"m1": (1, 1.5), "m2": (2, 1.25)})
    chain.head += 1
    world["service"].step()
    chain.deregister("m1")  # m1's uid now holds another hotkey
    chain.head += world["settings"].weights_interval_blocks
    world["service"].step()
    sets = [dict(zip(c.params["dests"], c.params["weights"], strict=True))
            for c, _ in chain.submitted if c.function == "set_mechanism_weights"]
    uid_m1 = next(i for i, n in enumerate(chain.neurons) if n["hotkey"] == "replaced-m1")
    assert uid_m1 in sets[0] and uid_m1 not in sets[1] and len(sets[1]) == 1


@pytest.mark.parametrize(("storage", "cutoff", "source", "interval"), [
    ({"ActivityCutoffFactorMilli": 2000, "Tempo": 360}, 720, "chain: ActivityCutoffFactorMilli x Tempo", 180),
    ({"ActivityCutoff": 400}, 400, "chain: ActivityCutoff", 100),
    ({}, 5000, "settings: EDGEMAXX_ACTIVITY_CUTOFF_BLOCKS", 360),
])
def test_the_weights_interval_stays_within_the_activity_cutoff(world, storage, cutoff, source, interval):
    chain = world["chain"]
    for name, value in storage.items():
        chain.storage[("SubtensorModule", name, (NETUID,))] = value
    service = world["service"]
    service.settings = world["settings"].model_copy(update={"weights_interval_blocks": 360})
    _finish_run(world, {"m1": (1, 1.5)})
    chain.head += 1
    service.step()
    status = service.status
    assert (status.activity_cutoff_blocks, status.activity_cutoff_source) == (cutoff, source)
    assert status.weights_interval_blocks == interval and status.last_set is not None
    assert status.next_weights_block == chain.head + interval
    chain.head += interval - 1
    service.step()
    assert len([c for c, _ in chain.submitted if c.function == "set_mechanism_weights"]) == 1
    chain.head += 1
    service.step()
    assert len([c for c, _ in chain.submitted if c.function == "set_mechanism_weights"]) == 2


def test_a_run_past_its_deadline_is_ended_by_the_service(world):
    """No worker needed: the chain service settles the run, unfinished submissions end as error."""
    from edgemaxx.models import SourceKind, SubmissionSource
    from state.records import RunState, SubmissionRecord

    chain, redis, service = world["chain"], world["redis"], world["service"]
    service.step()
    run = store.current_run(redis, "flux-4090")
    assert run.deadline_at == pytest.approx(run.started_at + 22 * 3600)
    record = SubmissionRecord(hotkey="slow", uid=5, block=1, state=SubmissionState.BENCHMARKING,
                              source=SubmissionSource(kind=SourceKind.GIT, url="https://github.com/s/f",
                                                      revision="abcdef0"))
    store.save_record(redis, run.id, record)
    chain.register("slow", "cold-slow")
    baseline = RunResult(name="baseline", backend="process", status=RunStatus.OK,
                         metrics=Metrics(generation_times_s=[1.0]))
    baseline.outputs = [None] * len(run.inputs)
    store.save_baseline(redis, run.id, "gpu0", baseline)
    service.step()
    assert store.load_run(redis, run.id).end is None
    chain.head += 22 * 300 + 1  # 22 h of 12 s blocks later, still the same day's run
    service.step()
    ended = store.load_run(redis, run.id)
    assert ended.end.state is RunState.FINISHED and "deadline" in ended.end.reason
    slow = store.load_record(redis, run.id, "slow")
    assert slow.state is SubmissionState.ERROR and "not finished by the run's deadline" in slow.reason


def test_without_a_wallet_the_service_runs_and_says_why(world, tmp_path, caplog):
    """No hotkey file: contests still run, weights are not attempted, the reason is in the status
    (so in /v1/status) and in the log, once."""
    chain, service = world["chain"], world["service"]
    service.wallet = bt.Wallet("validator", "missing", path=str(tmp_path / "no-wallets"))
    _finish_run(world, {"m1": (1, 1.5)})
    chain.head += 1
    with caplog.at_level("ERROR", logger="chain.service"):
        service.run(max_iterations=3, sleep=lambda _: None)
    assert service.status.consecutive_errors == 0, service.status.error
    assert "no weights can be set" in service.status.wallet_error
    assert "hotkeys/missing" in service.status.wallet_error
    assert not service.status.last_weights.ok
    assert service.status.last_weights.message == service.status.wallet_error
    assert not [c for c, _ in chain.submitted if c.function == "set_mechanism_weights"]
    assert len([r for r in caplog.records if "no weights can be set" in r.getMessage()]) == 1
    from state.chain import load_chain_status

    assert load_chain_status(world["redis"]).wallet_error == service.status.wallet_error


def test_redis_down_is_one_line_per_iteration(world, redis_url, caplog):
    """Redis gone: each iteration fails and says so in one line; no traceback in the log."""
    service = world["service"]
    service.redis = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    delays: list[float] = []
    with caplog.at_level("WARNING", logger="chain.service"):
        service.run(max_iterations=2, sleep=delays.append)
    assert delays == [2.0, 4.0]
    assert caplog.records and not any(r.exc_info for r in caplog.records)
    assert any("could not publish chain status" in r.getMessage() for r in caplog.records)


def test_the_subnet_weights_every_validator_set_are_kept_for_the_dashboard(world):
    """Each iteration reads every validator's row (through the real SDK) and keeps it in Redis; the
    API's view says who agrees with the stake-weighted consensus and who does not."""
    from api.subnet_view import subnet_view
    from state.chain import load_subnet_weights, weights_history

    chain, service, redis = world["chain"], world["service"], world["redis"]
    chain.register("hk-big-validator", "cold-big", stake_tao=3000, permit=True)
    chain.register("hk-small-validator", "cold-small", stake_tao=1000, permit=True)
    chain.register("hk-idle-validator", "cold-idle", stake_tao=10, permit=True)
    m1 = len(chain.neurons)  # _finish_run registers the miners in this order
    m2 = m1 + 1
    _finish_run(world, {"m1": (m1, 1.5), "m2": (m2, 1.25)})
    set_at = chain.head - 20
    chain.set_weights("hk-big-validator", {m1: 65535}, block=set_at)
    chain.set_weights("hk-small-validator", {m2: 65535}, block=chain.head - 5)
    chain.head += 1
    service.step()

    found = load_subnet_weights(redis)
    assert found is not None and found.error == "" and found.block == chain.head
    rows = {v.hotkey: v for v in found.validators}
    assert rows["hk-big-validator"].weights == {m1: pytest.approx(1.0)}
    assert rows["hk-small-validator"].weights == {m2: pytest.approx(1.0)}
    assert rows["hk-idle-validator"].weights == {} and rows["hk-idle-validator"].validator_permit
    assert [v.hotkey for v in found.validators][:2] == ["hk-big-validator", "hk-small-validator"]  # by stake
    # This validator's own row is the one it just set: read back from chain like any other.
    own = rows[found.own_hotkey or ""]
    assert own.uid == world["validator_uid"] and set(own.weights) == {m1, m2}
    assert weights_history(redis)[-1].weights == service.status.last_set.weights

    view = subnet_view(found)
    shown = {v.hotkey: v for v in view.validators}
    assert shown["hk-big-validator"].blocks_since_update == chain.head - set_at
    assert shown["hk-big-validator"].top[0].uid == m1
    assert shown["hk-idle-validator"].agreement is None
    assert shown[found.own_hotkey or ""].this_validator
    # Stake 3000 says m1, 1000 says m2 (own stake is 0): consensus 0.75 / 0.25, and they part on both.
    miners = {m.uid: m for m in view.miners}
    assert miners[m1].consensus == pytest.approx(0.75) and miners[m2].consensus == pytest.approx(0.25)
    assert miners[m1].min == 0.0 and miners[m1].max == pytest.approx(1.0)
    assert shown["hk-big-validator"].agreement == pytest.approx(0.75)
    assert shown["hk-small-validator"].agreement == pytest.approx(0.25)
