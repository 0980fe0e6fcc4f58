"""Contest files for the service tests: the tiny-Flux baseline on the CPU, what each test varies."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO_ROOT


def cpu_contest(path: Path, contest_id: str, *, baseline: str = "flux-baseline", noise_margin: float = 0.25,
                inputs: int = 3, size: int = 128, load_s: float = 240, request_default_s: float = 30,
                run_deadline_h: float = 1, daily_at: str | None = None) -> Path:
    schedule = f'\n[schedule]\ndaily_at = "{daily_at}"\ntimezone = "UTC"\n' if daily_at else ""
    path.write_text(f'''id = "{contest_id}"
similarity_metric = "st-lpips"
similarity_floor = 0.75
noise_margin = {noise_margin}
no_winner = "equal"

[baseline]
path = "{REPO_ROOT / "tests" / "fixtures" / baseline}"

[weights]
generation_time = 0.5
similarity = 0.5

[inputs]
count = {inputs}
width = {size}
height = {size}

[timeouts]
load_s = {load_s}
request_factor = 3.0
request_default_s = {request_default_s}
run_s = 1800
run_deadline_h = {run_deadline_h}
{schedule}''')
    return path
