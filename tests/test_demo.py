"""`edgemaxx demo`, the README's first command, end to end (embedded Redis, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import TEST_DATA
from tests.service import free_port


def test_demo_prints_the_leaderboard(base_image):
    env = {key: value for key, value in os.environ.items() if not key.startswith("EDGEMAXX_")}
    env.update({"EDGEMAXX_DATA_DIR": str(TEST_DATA), "COLUMNS": "200"})
    result = subprocess.run([sys.executable, "-m", "cli", "demo", "--port", str(free_port())],
                            capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()

    def row(name: str) -> int:
        return next(i for i, line in enumerate(lines) if f" {name} " in line)

    faster, baseline, invalid = row("demo-faster"), row("baseline"), row("demo-invalid")
    assert faster < baseline < invalid, result.stdout
    assert "scored" in lines[faster] and " 1 " in lines[faster]
    assert "invalid" in lines[invalid] and "do not decode" in lines[invalid]
    assert "status: http://127.0.0.1:" in result.stdout
