"""A built wheel works outside the checkout: operators install it into an image.

The wheel is built from this checkout and installed, without its dependencies, into a fresh venv
in a temporary directory; the third-party libraries (torch and friends, 6 GB) are borrowed from
the test venv through a path entry, so what runs is only the wheel's own code and package data.
Then `edgemaxx bench` runs a fixture from there, on the contest baseline shipped in the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, fixture_path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what git would commit: setuptools leaves build/ where it builds, and a
    # stale one must not leak into the wheel.
    source = root / "source"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, check=True, capture_output=True, timeout=60).stdout
    for name in filter(None, listed.decode().split("\0")):
        path = REPO_ROOT / name
        if path.is_file() and not path.is_symlink():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(dist)],
                   check=True, capture_output=True, timeout=600, cwd=root)
    (wheel,) = dist.glob("edgemaxx-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "uv", "pip", "install", "--python", str(python), "--no-deps",
                    "--offline", str(wheel)], check=True, capture_output=True, timeout=300, cwd=root)
    # Dependencies only: the test venv's site-packages as a plain path entry (its .pth files, the
    # editable install's finder among them, are not processed from there).
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True, timeout=60).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "zz-borrowed-dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return venv


def _run(venv: Path, args: list[str], cwd: Path, settings=None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("EDGEMAXX_", "PYTHON"))}
    env["COLUMNS"] = "200"
    if settings is not None:
        env.update({"EDGEMAXX_DATA_DIR": str(settings.data_dir), "EDGEMAXX_WHEELHOUSE": str(settings.wheelhouse)})
    return subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=cwd, env=env)


def test_wheel_carries_contests_examples_and_the_sandbox_recipe(installed: Path, tmp_path: Path):
    code = ("import edgemaxx.contest as c, images.build as b, sandbox.select, cli.app; "
            "from edgemaxx.settings import Settings; "
            "print(c.__file__); print(c.load_contest('flux-4090').id); "
            "print(c.load_contest('demo-cpu').baseline.spec()); print(b.dockerfile(Settings())); "
            "print(b.LAUNCHER)")
    result = _run(installed, [str(installed / "bin" / "python"), "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    module, contest, baseline, dockerfile, launcher = result.stdout.split()
    site_packages = str(installed / "lib")
    assert module.startswith(site_packages), "edgemaxx must come from the wheel, not the checkout"
    assert contest == "flux-4090"
    for path in (baseline, dockerfile, launcher):
        assert path.startswith(site_packages) and Path(path).exists(), path
    assert (Path(baseline) / "uv.lock").is_file() and (Path(baseline) / "src" / "pipeline.py").is_file()


def test_bench_runs_from_the_installed_wheel(installed: Path, tmp_path: Path, settings):
    result = _run(installed, [str(installed / "bin" / "edgemaxx"), "bench", str(fixture_path("flux-faster")),
                              "--sandbox", "process", "--inputs", "2", "--json"], tmp_path, settings)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["contest"] == "demo-cpu"
    assert report["baseline"]["status"] == "ok" and report["submission"]["status"] == "ok"
    assert report["score"] is not None and set(report["score_terms"]) == {"generation_time", "similarity"}
    assert report["similarity"]["min"] > 0.99, "the faster fixture reproduces the baseline's images"


def test_wheel_carries_the_dashboard(installed: Path, tmp_path: Path):
    """Every page and asset the API serves is in the wheel (a missing one is a 500 in production)."""
    code = ("from importlib import resources; import api.pages as p; "
            "static = resources.files('api') / 'static'; print(static); "
            "print([n for n in [*p.PAGES.values(), *p.ASSETS] if not (static / n).is_file()])")
    result = _run(installed, [str(installed / "bin" / "python"), "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    static, missing = result.stdout.splitlines()
    assert static.startswith(str(installed / "lib")), "the pages must come from the wheel, not the checkout"
    assert missing == "[]", f"not in the wheel: {missing}"
