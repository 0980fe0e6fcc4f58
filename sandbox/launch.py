"""Starts a submission's `start_inference` entry point inside the sandbox.

Runs under the submission's own interpreter, so it imports nothing from edgemaxx and keeps to
Python 3.8 syntax. The code is mounted, not installed, so this resolves the entry point the way
an editable install would: the package directory on sys.path, then `module:function`.
"""

import importlib
import os
import sys
from typing import Any


def _load_toml(path: str) -> dict[str, Any]:
    try:
        import tomllib as toml
    except ImportError:  # Python < 3.11: the build puts a copy of the validator's tomllib beside us
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor"))
        try:
            import tomllib as toml
        finally:
            del sys.path[0]
    with open(path, "rb") as handle:
        return toml.load(handle)


def _package_dir(app: str, pyproject: dict[str, Any]) -> str:
    package_dir = pyproject.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    if "" in package_dir:
        return os.path.join(app, package_dir[""])
    src = os.path.join(app, "src")
    return src if os.path.isdir(src) else app


def _say_started() -> None:
    """Tell the process sandbox its layers all worked: an exit before this byte is the
    sandbox's failure, after it the submission's. The variable names an inherited pipe."""
    fd = os.environ.pop("EDGEMAXX_STARTED_FD", None)
    if fd and fd.isdigit():
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except OSError:
            pass


def main() -> None:
    _say_started()
    app = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
    pyproject = _load_toml(os.path.join(app, "pyproject.toml"))
    target = pyproject["project"]["scripts"]["start_inference"]
    module_name, _, attribute = target.partition(":")

    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]
    sys.path.insert(0, _package_dir(app, pyproject))
    os.chdir(app)
    sys.argv = ["start_inference"]

    entry: Any = importlib.import_module(module_name.strip())
    for part in attribute.strip().split("."):
        entry = getattr(entry, part)
    sys.exit(entry())


if __name__ == "__main__":
    main()
