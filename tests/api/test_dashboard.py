"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against the real
service: redis-server, the API under uvicorn, a builder and a worker process scoring real fixture
submissions in the process sandbox, and the subnet's weights read from a fake chain through the
real SDK by the chain service's own reader."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.conftest import TEST_DATA, fixture_path
from tests.service import RedisServer, Service, free_port, http_ready, wait_for
from tests.variants import slow_requests

CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/setup installs it); no downloaded browser
TOKEN = "test-operator-token"
CONTEST = "demo-cpu"
PHONE = {"width": 390, "height": 844}
# Set to a folder (docs/screenshots) to keep a screenshot of every page at both widths: the README's.
SCREENSHOTS = os.environ.get("EDGEMAXX_SCREENSHOTS")
DESKTOP = {"width": 1366, "height": 900}


def _submit(base: str, hotkey: str, fixture: str | Path, uid: int) -> None:
    path = fixture if isinstance(fixture, Path) else fixture_path(fixture)
    response = httpx.post(f"{base}/v1/submissions",
                          json={"hotkey": hotkey, "repository": str(path), "contest": CONTEST,
                                "uid": uid, "block": uid},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 202, response.text


def _final(base: str, hotkey: str) -> dict | None:
    response = httpx.get(f"{base}/v1/submissions/{hotkey}", timeout=10)
    record = response.json() if response.status_code == 200 else None
    return record if record and record["state"] in ("scored", "invalid", "error") else None


def _chain_weights(redis: Redis, own_hotkey: str) -> dict[str, int]:
    """What the chain service keeps each iteration: every validator's row, read through the SDK
    from a fake chain holding three validators (one of them this one) and two miners."""
    import bittensor as bt

    from chain.subnet import read_subnet_weights
    from state.chain import record_own_weights, save_chain_status, save_subnet_weights
    from state.records import ChainStatus, WeightsAttempt
    from tests.chain.fake_chain import FakeChain

    chain = FakeChain(39)
    uids = {"hk-vali-big": chain.register("hk-vali-big", "c1", stake_tao=3000, permit=True),
            own_hotkey: chain.register(own_hotkey, "c2", stake_tao=1000, permit=True),
            "hk-faster": chain.register("hk-faster", "c3"), "hk-garbage": chain.register("hk-garbage", "c4")}
    chain.set_weights("hk-vali-big", {uids["hk-faster"]: 65535}, block=chain.head - 30)
    chain.set_weights(own_hotkey, {uids["hk-faster"]: 32768, uids["hk-garbage"]: 32767}, block=chain.head - 3)
    found = read_subnet_weights(bt.Subtensor(substrate=chain), 39, chain.head)
    found.own_hotkey = own_hotkey
    save_subnet_weights(redis, found)
    own = WeightsAttempt(block=chain.head - 3, ok=True, message="", run_id="earlier-run",
                         weights={uids["hk-faster"]: 0.5, uids["hk-garbage"]: 0.5})
    record_own_weights(redis, own)
    save_chain_status(redis, ChainStatus(block=chain.head, last_weights=own, last_set=own))
    return uids


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A run with the baseline, a scored and an invalid submission; the subnet's weights in Redis."""
    tmp = tmp_path_factory.mktemp("dashboard")
    redis_server = RedisServer(tmp / "redis")
    redis_server.start()
    port = free_port()
    env = {**os.environ, "EDGEMAXX_REDIS_URL": redis_server.url, "EDGEMAXX_ADMIN_TOKEN": TOKEN,
           "EDGEMAXX_ALLOW_LOCAL_SOURCES": "1", "EDGEMAXX_DATA_DIR": str(TEST_DATA),
           "EDGEMAXX_SANDBOX_BACKEND": "process", "EDGEMAXX_SANDBOX_MEMORY_MB": "2048",
           "EDGEMAXX_API_PORT": str(port), "EDGEMAXX_WORKER_HEARTBEAT_TTL_S": "6", "PYTHONUNBUFFERED": "1"}
    worker_name = f"test-worker-{uuid.uuid4().hex[:6]}"
    parts = [Service(["api"], env, tmp / "api.log").start(),
             Service(["builder", "--name", f"test-builder-{uuid.uuid4().hex[:6]}"], env, tmp / "builder.log").start(),
             Service(["worker", "--name", worker_name, "--contest", CONTEST], env, tmp / "worker.log").start()]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ready(f"{base}/v1/status"), 60, "the API", parts)
        _submit(base, "hk-faster", "flux-faster", 11)
        _submit(base, "hk-garbage", "garbage-output", 12)
        faster = wait_for(lambda: _final(base, "hk-faster"), 600, "hk-faster to be scored", parts)
        garbage = wait_for(lambda: _final(base, "hk-garbage"), 600, "hk-garbage", parts)
        assert faster["state"] == "scored" and garbage["state"] == "invalid", (faster, garbage)
        redis = Redis.from_url(redis_server.url)
        uids = _chain_weights(redis, "hk-own-vali")
        yield {"base": base, "run_id": faster["run_id"], "faster": faster, "garbage": garbage, "parts": parts,
               "worker_name": worker_name, "uids": uids}
    finally:
        for part in parts:
            part.stop()
        redis_server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup does)"
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium refuses its own sandbox.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Page:
    """A page with every console error and uncaught exception it raised collected."""

    def __init__(self, browser: Any, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"exception: {e}"))

    def open(self, url: str, ready: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_selector(ready, timeout=20_000)
        return self.page

    def close(self) -> None:
        self.context.close()


def _pages(d: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """path → (url, a selector that shows the page rendered its data)."""
    run, base = d["run_id"], d["base"]
    return {
        "leaderboard": (f"{base}/", "#board tr[data-hotkey='hk-faster']"),
        "submission": (f"{base}/submission?run={run}&hotkey=hk-faster", ".input .sim-value"),
        "invalid submission": (f"{base}/submission?run={run}&hotkey=hk-garbage", "#notes .reason"),
        "demo": (f"{base}/demo?run={run}", "#grid figure img"),
        "validator": (f"{base}/validator", "#workers td.mono"),
        "weights": (f"{base}/weights", "#validators tbody tr td.mono"),
    }


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_renders_without_a_console_error(dashboard, browser, viewport):
    width = "phone" if viewport is PHONE else "desktop"
    for name, (url, ready) in _pages(dashboard).items():
        page = Page(browser, viewport)
        try:
            shown = page.open(url, ready)
            shown.wait_for_load_state("networkidle")
            assert not shown.locator("#error").is_visible(), f"{name}: {shown.locator('#error').inner_text()}"
            # Usable on a phone: the page itself never scrolls sideways (wide tables scroll in their box).
            overflow = shown.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} is {overflow}px wider than a {viewport['width']}px screen"
            if SCREENSHOTS:
                shown.screenshot(path=f"{SCREENSHOTS}/{name.replace(' ', '-')}-{width}.png", full_page=True)
        finally:
            page.close()
        assert page.errors == [], f"{name}: {page.errors}"


def test_leaderboard_shows_the_baseline_the_scored_and_the_invalid_with_its_reason(dashboard, browser):
    page = Page(browser, DESKTOP)
    try:
        shown = page.open(f"{dashboard['base']}/", "#board tr[data-hotkey='hk-garbage']")
        rows = shown.locator("#board tbody tr")
        hotkeys = rows.evaluate_all("rows => rows.map(r => r.dataset.hotkey)")
        assert hotkeys[0] == f"baseline@{dashboard['worker_name']}", hotkeys
        baseline = shown.locator("#board tr.baseline").inner_text()
        assert "baseline" in baseline and "1.000" in baseline
        faster = shown.locator("#board tr[data-hotkey='hk-faster']")
        score = dashboard["faster"]["score"]
        assert f"{score:.3f}" in faster.inner_text() and "scored" in faster.inner_text()
        assert faster.locator(".ratio.up").count() >= 1, "faster than the baseline: a ratio above 1"
        headers = shown.locator("#board thead th").all_inner_texts()
        assert any("time term" in h for h in headers) and any("similarity term" in h for h in headers), headers
        garbage = shown.locator("#board tr[data-hotkey='hk-garbage']")
        assert "invalid" in garbage.inner_text()
        assert "do not decode as an image" in garbage.locator(".reason").inner_text()
        # Sortable: by score descending puts the best row first (the faster one, unless a loaded
        # machine measured it at or below the baseline's 1.0).
        shown.locator("#board th[data-key='score']").click()
        best = "hk-faster" if score > 1.0 else f"baseline@{dashboard['worker_name']}"
        assert rows.first.get_attribute("data-hotkey") == best
        # Each row links to its submission.
        faster.locator("a").first.click()
        shown.wait_for_selector(".input .sim-value")
        assert "hotkey=hk-faster" in shown.url
    finally:
        page.close()
    assert page.errors == []


def test_submission_page_shows_both_images_and_each_input_similarity(dashboard, browser):
    page = Page(browser, DESKTOP)
    try:
        shown = page.open(f"{dashboard['base']}/submission?run={dashboard['run_id']}&hotkey=hk-faster",
                          ".input .sim-value")
        shown.wait_for_load_state("networkidle")
        cards = shown.locator(".input")
        similarities = dashboard["faster"]["similarities"]
        assert cards.count() == len(similarities) == 6
        for index, expected in enumerate(similarities):
            card = cards.nth(index)
            assert card.locator(".sim-value").inner_text() == f"{expected:.4f}"
            images = card.locator("img")
            assert images.count() == 2  # the baseline's and the submission's, side by side
            sizes = images.evaluate_all("imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            assert all(done and w > 0 and h > 0 for done, w, h in sizes), sizes
        assert shown.locator("#chart svg rect.bar-sub").count() == 6
        assert shown.locator("#metrics tbody tr").count() >= 8
        # Where its benchmark job's time went: its own work, and the validator's share.
        timings = dashboard["faster"]["timings"]
        job = shown.locator("#job-time").inner_text()
        # A CPU worker here: "its worker", not "the GPU".
        assert f"held its worker {timings['held_s']:.1f} s" in job
        assert f"({100 * timings['validator_share']:.1f} %)" in job
    finally:
        page.close()
    assert page.errors == []


def test_each_benchmark_job_accounts_for_its_time(dashboard):
    """The job's time split between the submission's own work (as its metrics say) and the
    validator's: sandbox start and stop, similarity, the rest."""
    record = dashboard["faster"]
    timings, metrics = record["timings"], record["metrics"]
    own = metrics["load_time_s"] + sum(metrics["warmup_times_s"]) + sum(metrics["generation_times_s"])
    assert timings["own_s"] == pytest.approx(own)
    assert timings["similarity_s"] > 0 and timings["sandbox_start_s"] > 0 and timings["teardown_s"] > 0
    parts = timings["sandbox_start_s"] + timings["teardown_s"] + timings["similarity_s"]
    assert parts <= timings["validator_s"] + 1e-6  # the rest is Redis and bookkeeping, never negative
    held_here = timings["held_s"] - timings["baseline_s"] - timings["prepared_here_s"]
    assert timings["validator_s"] == pytest.approx(held_here - own)
    assert timings["validator_share"] == pytest.approx(timings["validator_s"] / held_here)
    # The worker built the similarity network once, before forking its first work horse.
    worker_log = dashboard["parts"][2].log.read_text()
    assert "preloaded the job code and the st-lpips similarity network(s)" in worker_log, worker_log[-3000:]


def test_subnet_weights_page_shows_what_the_chain_holds(dashboard, browser):
    page = Page(browser, DESKTOP)
    uids = dashboard["uids"]
    try:
        shown = page.open(f"{dashboard['base']}/weights", "#validators tbody tr td.mono")
        validators = shown.locator("#validators tbody tr")
        assert validators.count() == 2
        first, second = validators.nth(0).inner_text(), validators.nth(1).inner_text()
        assert "hk-vali-big" in first and "75.0 %" in first and f"{uids['hk-faster']}: 1.000" in first
        assert "hk-own-vali" in second and "(this validator)" in second
        assert validators.nth(1).get_attribute("class") == "mine"
        miners = shown.locator("#miners tbody tr")
        top = miners.nth(0).inner_text()
        # 3000 stake says all on hk-faster; 1000 says half: consensus 0.75 + 0.25 × 0.5.
        assert top.startswith(str(uids["hk-faster"])) and "0.8750" in top
        # They part on both miners: one validator gives hk-faster everything, the other half.
        assert shown.locator("#miners td.disagree").count() == 2
    finally:
        page.close()
    assert page.errors == []


def test_validator_page_progress_bar_moves_during_a_benchmark(dashboard, browser):
    # Each of its requests lasts 1.5 s (the tiny fixture's own take milliseconds, too brief for a
    # page that polls every second): the bar has six steps to be seen at.
    slow = slow_requests(fixture_path("flux-baseline"), TEST_DATA / "variants" / f"slow-{uuid.uuid4().hex[:6]}", 1.5)
    page = Page(browser, DESKTOP)
    try:
        shown = page.open(f"{dashboard['base']}/validator", "#workers td.mono")
        assert "hk-faster" not in shown.locator("#workers").inner_text(), "an idle worker shows no job"
        weights = shown.locator("#weights").inner_text()
        assert "earlier-run" in weights and f"{dashboard['uids']['hk-faster']}: 0.5000" in weights
        assert "earlier-run" in shown.locator("#weights-history").inner_text()
        _submit(dashboard["base"], "hk-third", slow, 13)
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + 600
        row = f"#workers tr[data-worker='{dashboard['worker_name']}']"
        while time.monotonic() < deadline and not _final(dashboard["base"], "hk-third"):
            # One read of the row (the page re-renders it every second).
            doing, value = shown.evaluate(f"""() => {{
                const row = document.querySelector("{row}");
                const bar = row && row.querySelector("progress");
                return [row ? row.querySelector("td.doing").innerText : "", bar ? bar.getAttribute("value") : null];
            }}""")
            if value is not None and (doing, value) not in seen:
                seen.append((doing, value))
            time.sleep(0.1)
        record = _final(dashboard["base"], "hk-third")
        assert record, "hk-third was never benchmarked"
        assert record["state"] == "scored", record
        # hk-third opened a new run (the previous one ended when all its submissions were final), so
        # its job measures that run's baseline first; then its own requests, each 1.5 s long.
        own = [value for doing, value in seen if "hk-third" in doing]
        assert len(set(own)) >= 2, (f"the progress bar never moved for hk-third: {seen}\n"
                                    f"{httpx.get(dashboard['base'] + '/v1/status', timeout=30).text[:3000]}")
        # It moves forward: within the measured requests, each value seen is past the one before.
        measured = [int(value) for doing, value in seen if doing.startswith("request") and "hk-third" in doing]
        assert measured == sorted(measured), seen
        # Done: the worker goes back to idle on the page.
        shown.locator(f"{row} td.doing", has_text="nothing").wait_for(timeout=15_000)
    finally:
        page.close()
        shutil.rmtree(slow, ignore_errors=True)
    assert page.errors == []


def test_images_and_pages_are_served_with_caching_headers(dashboard):
    base, run = dashboard["base"], dashboard["run_id"]
    image = httpx.get(f"{base}/v1/runs/{run}/outputs/hk-faster/0", timeout=10)
    assert image.status_code == 200 and image.headers["content-type"] in ("image/jpeg", "image/png", "image/webp")
    assert "max-age" in image.headers["cache-control"] and image.headers["etag"]
    again = httpx.get(f"{base}/v1/runs/{run}/outputs/hk-faster/0", headers={"If-None-Match": image.headers["etag"]},
                      timeout=10)
    assert again.status_code == 304 and again.content == b""
    # `baseline`: whichever worker's baseline the run keeps (here the one worker's).
    baseline = httpx.get(f"{base}/v1/runs/{run}/outputs/baseline/0", timeout=10)
    named = httpx.get(f"{base}/v1/runs/{run}/outputs/baseline@{dashboard['worker_name']}/0", timeout=10)
    assert baseline.status_code == named.status_code == 200 and baseline.content == named.content
    assert baseline.content.startswith(b"\xff\xd8\xff")
    missing = httpx.get(f"{base}/v1/runs/{run}/outputs/hk-garbage/0", timeout=10)
    assert missing.status_code == 404 and "not kept" in missing.json()["detail"]
    for path in ("/v1/status", f"/v1/contests/{CONTEST}", f"/v1/runs/{run}", "/v1/subnet/weights", "/validator"):
        first = httpx.get(f"{base}{path}", timeout=10)
        assert first.status_code == 200 and first.headers["etag"], path
        cached = httpx.get(f"{base}{path}", headers={"If-None-Match": first.headers["etag"]}, timeout=10)
        # The status may have been rebuilt in between (it is at most a second old): then it is a new 200.
        assert cached.status_code == 304 or (path == "/v1/status" and cached.headers["etag"] != first.headers["etag"])
