"""Contest files validate; inputs are the same for a seed everywhere, different across seeds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from edgemaxx import prompts
from edgemaxx.contest import Contest, all_contests, load_contest
from edgemaxx.inputs import inputs, prompt_list

SCRIPT = (
    "import json, sys; from edgemaxx.contest import load_contest; from edgemaxx.inputs import inputs; "
    "print(json.dumps([r.model_dump() for r in inputs(load_contest('flux-4090'), sys.argv[1])]))"
)


def _fresh_process(seed: str, hash_seed: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, seed], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)


def test_same_seed_same_inputs_in_fresh_processes():
    seed = "0x5c0ffee" + "ab" * 28
    first, second = _fresh_process(seed, "1"), _fresh_process(seed, "2")
    assert first == second
    assert first == [r.model_dump() for r in inputs(load_contest("flux-4090"), seed)]


def test_different_seeds_give_disjoint_lists():
    contest = load_contest("flux-4090")
    a, b = inputs(contest, "block-1"), inputs(contest, "block-2")
    assert not {r.prompt for r in a} & {r.prompt for r in b}
    assert len({r.prompt for r in a}) == contest.inputs.count
    assert len({r.seed for r in a}) == contest.inputs.count
    assert all((r.width, r.height) == (1024, 1024) for r in a)
    # 500 seeds × 12 prompts: no prompt ever comes back (a precomputed table would never hit).
    drawn = [p for s in range(500) for p in prompt_list(f"0x{s:064x}", 12)]
    assert len(set(drawn)) == len(drawn)


def test_prompt_space_cannot_be_enumerated():
    assert prompts.space_size() > 10**12
    lengths = [len(p.split()) for p in prompt_list("lengths", 2000)]
    # Like real text-to-image prompts, and inside CLIP's 77 tokens.
    assert 10 <= min(lengths) and max(lengths) <= 60 and 20 <= sum(lengths) / len(lengths) <= 40
    # Every slot's vocabulary is used: no slot is secretly constant.
    text = " ".join(prompt_list("coverage", 3000))
    for name, vocabulary, _ in prompts.SLOTS:
        used = sum(word in text for word in vocabulary)
        assert used > 0.5 * len(vocabulary), name


def test_a_run_never_repeats_a_prompt():
    many = prompt_list("dupes", 1000)
    assert len(set(many)) == 1000


def test_shipped_contests():
    contests = {c.id: c for c in all_contests()}
    flux = contests["flux-4090"]
    assert flux.gpu == "NVIDIA GeForce RTX 4090"
    assert (flux.weights.generation_time, flux.weights.similarity, flux.weights.vram) == (0.14, 0.43, 0.43)
    assert flux.baseline.revision == "2cff82c" and flux.similarity_floor == 0.75
    assert flux.schedule.timezone == "America/Los_Angeles" and flux.schedule.daily_at == "12:00"
    demo = contests["demo-cpu"]
    assert demo.gpu is None and demo.similarity_metric == "st-lpips"


def test_invalid_contest_is_refused():
    data = load_contest("demo-cpu").model_dump()
    data["weights"] = {}
    with pytest.raises(ValidationError, match="at least one metric weight"):
        Contest.model_validate(data)
    with pytest.raises(ValueError, match="unknown contest 'nope'"):
        load_contest("nope")


def test_daily_starts_across_daylight_saving():
    """flux-4090 starts at 12:00 in Los Angeles: 19:00 UTC in summer (PDT, UTC-7), 20:00 UTC in
    winter (PST, UTC-8); a run ends by the next start at the latest."""
    import datetime as dt

    schedule = load_contest("flux-4090").schedule
    before_change = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)  # 01:00 PDT, the day PST begins
    assert schedule.latest_start(before_change) == dt.datetime(2026, 10, 31, 19, 0, tzinfo=dt.UTC)
    assert schedule.next_start(before_change) == dt.datetime(2026, 11, 1, 20, 0, tzinfo=dt.UTC)
    at_start = dt.datetime(2026, 11, 1, 20, 0, tzinfo=dt.UTC)
    assert schedule.latest_start(at_start) == at_start
    assert schedule.next_start(at_start) == dt.datetime(2026, 11, 2, 20, 0, tzinfo=dt.UTC)
    assert load_contest("flux-4090").timeouts.run_deadline_h == 22
    with pytest.raises(ValidationError, match="unknown timezone"):
        Contest.model_validate({**load_contest("demo-cpu").model_dump(), "schedule": {"timezone": "Mars/Olympus"}})
    with pytest.raises(ValidationError, match="daily_at"):
        Contest.model_validate({**load_contest("demo-cpu").model_dump(), "schedule": {"daily_at": "25:00"}})
