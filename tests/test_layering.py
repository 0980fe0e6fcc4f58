"""The floor plan, checked: imports point down, and run state in Redis has one owner.

Layers, top to bottom: the entry points (`cli`); `api` and `chain`; `worker`; `sandbox`,
`images`, `scoring`, `state`; the shared base (`edgemaxx`). A package may import its own layer's
siblings only where listed below, and never a layer above it.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT

LAYER = {"cli": 4, "api": 3, "chain": 3, "worker": 2, "sandbox": 1, "images": 1, "scoring": 1, "state": 1,
         "edgemaxx": 0}
# Same-layer imports that are part of the plan: images reads the launcher shipped in sandbox/;
# chain reads repository keys the way scoring compares them.
ALLOWED_SIDEWAYS = {("images", "sandbox"), ("chain", "scoring")}
# What api/ and chain/ may use of worker: enqueueing (queues), a run's weights (results) and
# settling runs whose deadline passed (lifecycle: the chain service does it every iteration).
WORKER_PUBLIC = {"worker.queues", "worker.results", "worker.lifecycle"}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in LAYER:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if "examples" in path.parts:
                continue
            found.append((package, path))
    return found


def _imports(path: Path) -> list[str]:
    """Every module named by an import statement, wherever it sits (lazy imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            # `from state import runs` names the module state.runs
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_imports_point_down():
    violations = []
    for package, path in _modules():
        for name in _imports(path):
            target = name.split(".")[0]
            if target not in LAYER or target == package:
                continue
            if path.name == "launch.py" and package == "sandbox":
                continue
            upward = LAYER[target] > LAYER[package]
            sideways = LAYER[target] == LAYER[package] and (package, target) not in ALLOWED_SIDEWAYS
            if upward or sideways:
                violations.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    assert violations == []


def test_api_and_chain_use_only_the_public_worker_modules():
    violations = []
    for package, path in _modules():
        if package not in ("api", "chain"):
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "worker" and len(parts) > 1 and ".".join(parts[:2]) not in WORKER_PUBLIC:
                violations.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    assert violations == []


def test_the_sandbox_launcher_imports_nothing_of_edgemaxx():
    """launch.py runs under the submission's own interpreter, where edgemaxx is not installed."""
    names = _imports(REPO_ROOT / "sandbox" / "launch.py")
    assert not [n for n in names if n.split(".")[0] in LAYER]


def _grep(pattern: str) -> list[str]:
    result = subprocess.run(["git", "grep", "-n", "-E", pattern, "--", "*.py"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    return result.stdout.splitlines()


def test_only_the_state_package_touches_run_state_keys():
    # The key builders and key strings of run state, outside state/ (tests may read keys).
    hits = [line for line in _grep(r"keys\.(run|submissions|results|landings|outputs|baselines|order|check|"
                                   r"hotkey_runs|current_run|worker_alive|rate|nonce)\(|keys\.(WORKERS|"
                                   r"WORKER_BUSY|COUNTERS|DURATIONS|CHAIN_STATUS|PREFLIGHT|PREFIX)\b")
            if not line.startswith(("state/", "tests/"))]
    assert hits == []


def test_backend_names_appear_only_in_the_enums():
    hits = [line for line in _grep(r"[\"'](docker|process|auto)[\"']")
            if not line.startswith("tests/") and not re.match(r"^edgemaxx/models\.py:", line)]
    assert hits == []
