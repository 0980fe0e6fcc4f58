"""What one environment build installs, decided before anything is built.

The lock's export (pylock.toml: exact URLs and hashes), the interpreter for its requires-python,
and the pins the operator's wheelhouse satisfies. A wheelhouse wheel replaces a pin of the same
name whose version is equal ignoring the local label (torch 2.13.0 → torch-2.13.0+cpu) and whose
tags fit the chosen interpreter; it is installed without the lock's hash (the operator's wheels
are trusted), everything else is verified against the lock.
"""

from __future__ import annotations

import platform
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from edgemaxx.errors import InfrastructureError
from images import lock
from images.interpreters import Candidates, Choice, choose


class WheelhousePin(BaseModel):
    name: str
    wheel: Path
    marker: str | None = None

    def requirement(self, wheelhouse_dir: str | None) -> str:
        # In the image the wheel is copied to wheelhouse_dir; on the host it is read in place.
        path = f"{wheelhouse_dir}/{self.wheel.name}" if wheelhouse_dir else str(self.wheel.resolve())
        line = f"{self.name} @ file://{path}"
        return f"{line} ; {self.marker}" if self.marker else line


class BuildPlan(BaseModel):
    pylock: str  # uv's export, less the wheelhouse pins
    python: Choice
    wheelhouse: list[WheelhousePin] = Field(default_factory=list)
    has_vcs: bool = False

    def wheelhouse_requirements(self, wheelhouse_dir: str | None) -> str:
        return "".join(pin.requirement(wheelhouse_dir) + "\n" for pin in self.wheelhouse)

    def key_parts(self) -> list[bytes]:
        """Everything of the plan that changes what gets installed."""
        return [self.pylock.encode(), self.python.model_dump_json().encode(),
                *(f"{p.name}:{p.wheel.name}:{p.wheel.stat().st_size}:{p.marker}".encode()
                  for p in self.wheelhouse)]


def _fits(wheel: Path, version: str) -> bool:
    """Whether a wheel's tags can install on CPython `version` on this machine's architecture."""
    try:
        _name, _version, _build, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename:
        return False
    major, minor = version.split(".")[:2]
    pythons = {f"cp{major}{minor}", f"py{major}{minor}", f"py{major}"}
    machine = platform.machine()
    return any(
        tag.interpreter in pythons and tag.abi in {"none", "abi3", f"cp{major}{minor}"}
        and (tag.platform == "any" or ("linux" in tag.platform and tag.platform.endswith(machine)))
        for tag in tags
    )


def wheelhouse_pins(locked: list[lock.LockedPackage], wheels: list[Path],
                    python_version: str | None) -> list[WheelhousePin]:
    """The locked pins the wheelhouse satisfies for this interpreter (None: not known yet)."""
    pins: list[WheelhousePin] = []
    for package in locked:
        if package.kind is not lock.SourceKind.REGISTRY or not package.version:
            continue
        for wheel in wheels:
            try:
                name, version, _build, _tags = parse_wheel_filename(wheel.name)
                same = Version(str(version)).public == Version(package.version).public
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if name == package.name and same and python_version and _fits(wheel, python_version):
                pins.append(WheelhousePin(name=package.name, wheel=wheel, marker=package.marker))
                break
    return pins


def make_plan(root: Path, candidates: Candidates, wheels: list[Path], *, downloads: bool) -> BuildPlan:
    """Export, pick the interpreter (or refuse), substitute wheelhouse pins, check git is there."""
    full = lock.export(root)
    locked = lock.packages(full)
    python = choose(lock.requires_python(root), candidates, downloads=downloads)
    # A downloaded interpreter's exact version is unknown until the build: no substitution then.
    pins = wheelhouse_pins(locked, wheels, None if python.download else python.version)
    pylock = lock.export(root, leave_out=[p.name for p in pins]) if pins else full
    has_vcs = any(p.kind is lock.SourceKind.VCS for p in locked)
    if has_vcs and not candidates.has_git:
        raise InfrastructureError(
            f"uv.lock has git dependencies but {candidates.where} has no git: add git to the base image"
        )
    return BuildPlan(pylock=pylock, python=python, wheelhouse=pins, has_vcs=has_vcs)

