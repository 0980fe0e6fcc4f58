"""Reading a submission's pyproject.toml: spec version, entry point, model list."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgemaxx.constants import SPEC_VERSION
from edgemaxx.errors import SubmissionError
from edgemaxx.models import ModelSpec

_ENTRY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class SubmissionManifest(BaseModel):
    name: str
    version: str
    start_inference: str
    dependencies: list[str]
    models: list[ModelSpec]


def read_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    if not path.is_file():
        raise SubmissionError("pyproject.toml is missing from the repository root")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"pyproject.toml does not parse: {exc}") from exc


def _table(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise SubmissionError(f"{where} must be a table, not {type(value).__name__}")
    return value


def spec_version(pyproject: dict[str, Any]) -> str:
    version = _table(pyproject, "project", "[project]").get("version")
    if str(version) != str(SPEC_VERSION):
        raise SubmissionError(
            f'[project] version is {version!r}; submissions must declare version = "{SPEC_VERSION}"'
        )
    return str(version)


def entry_point(pyproject: dict[str, Any]) -> str:
    scripts = _table(_table(pyproject, "project", "[project]"), "scripts", "[project.scripts]")
    target = scripts.get("start_inference")
    if not target:
        raise SubmissionError("[project.scripts] has no start_inference entry")
    if not isinstance(target, str) or not _ENTRY_RE.match(target.strip()):
        raise SubmissionError(f"start_inference = {target!r} is not of the form 'module:function'")
    return target.strip()


def models(pyproject: dict[str, Any]) -> list[ModelSpec]:
    # As on SN39, the table and its models array must be there (`models = []` for none).
    tool = _table(pyproject, "tool", "[tool]")
    if "edge-maxxing" not in tool:
        raise SubmissionError("[tool.edge-maxxing] is missing: list the models to fetch as "
                              "[[tool.edge-maxxing.models]] entries, or `models = []` for none")
    table = _table(tool, "edge-maxxing", "[tool.edge-maxxing]")
    if "models" not in table:
        raise SubmissionError("[tool.edge-maxxing] has no models: list them as [[tool.edge-maxxing.models]] "
                              "entries, or `models = []` for none")
    raw = table["models"]
    if not isinstance(raw, list):
        raise SubmissionError("[tool.edge-maxxing] models must be an array of tables")
    specs: list[ModelSpec] = []
    for index, entry in enumerate(raw):
        where = f"[[tool.edge-maxxing.models]] entry {index + 1}"
        if not isinstance(entry, dict):
            raise SubmissionError(f"{where} is not a table")
        unknown = set(entry) - {"repository", "revision", "include", "exclude"}
        if unknown:
            raise SubmissionError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        try:
            spec = ModelSpec.model_validate(entry, strict=True)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SubmissionError(f"{where} is malformed: {problems}") from exc
        if not _HF_REPO_RE.match(spec.repository):
            raise SubmissionError(f"{where}: repository {spec.repository!r} is not 'owner/name'")
        if not spec.revision.strip():
            raise SubmissionError(f"{where}: revision is empty")
        specs.append(spec)
    return specs


def read_dependencies(pyproject: dict[str, Any]) -> list[str]:
    deps = _table(pyproject, "project", "[project]").get("dependencies", [])
    return [str(d) for d in deps] if isinstance(deps, list) else []


def read_manifest(root: Path) -> SubmissionManifest:
    pyproject = read_pyproject(root)
    project = _table(pyproject, "project", "[project]")
    return SubmissionManifest(
        name=str(project.get("name", root.name)),
        version=spec_version(pyproject),
        start_inference=entry_point(pyproject),
        dependencies=read_dependencies(pyproject),
        models=models(pyproject),
    )
