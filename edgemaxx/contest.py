"""Contest definitions: data files validated by pydantic, one per contest."""

from __future__ import annotations

import datetime as dt
import tomllib
from enum import StrEnum
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, model_validator

CONTESTS_DIR = Path(__file__).resolve().parent / "contests"
# Example submissions shipped with edgemaxx (package data): the demo's baseline and entrants.
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def example_path(name: str) -> Path:
    path = EXAMPLES_DIR / name
    if not (path / "pyproject.toml").is_file():
        known = ", ".join(sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.is_dir()))
        raise ValueError(f"unknown example submission {name!r} (known: {known})")
    return path


class SimilarityMetric(StrEnum):
    LPIPS_ALEX = "lpips-alex"
    ST_LPIPS = "st-lpips"


class MetricWeights(BaseModel):
    """Relative weights of each metric in the score; they need not sum to 1."""

    generation_time: float = Field(default=0.0, ge=0)
    similarity: float = Field(default=0.0, ge=0)
    vram: float = Field(default=0.0, ge=0)
    energy: float = Field(default=0.0, ge=0)
    ram: float = Field(default=0.0, ge=0)
    size: float = Field(default=0.0, ge=0)
    load_time: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> MetricWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one metric weight must be positive")
        return self


class Baseline(BaseModel):
    """One of: a repository at a revision, an example shipped with edgemaxx, or a local path
    (absolute, or relative to the contest file)."""

    repository: str | None = None
    revision: str | None = None
    example: str | None = None
    path: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Baseline:
        given = [bool(self.repository and self.revision), bool(self.example), bool(self.path)]
        if sum(given) != 1:
            raise ValueError("baseline needs exactly one of: repository and revision, example, path")
        return self

    def spec(self) -> str:
        if self.example:
            return str(example_path(self.example))
        if self.path:
            return str(self.path)
        return f"{self.repository}@{self.revision}"


class Inputs(BaseModel):
    count: int = Field(ge=1, le=1000)
    width: int = Field(ge=16, le=4096)
    height: int = Field(ge=16, le=4096)


class Timeouts(BaseModel):
    load_s: float = Field(default=240.0, gt=0)
    request_factor: float = Field(default=2.0, gt=1)  # × the baseline's mean generation time
    request_default_s: float = Field(default=120.0, gt=0)  # before a baseline exists
    run_s: float = Field(default=1800.0, gt=0)  # one submission's whole sandbox run
    # A contest run ends by this many hours after it started (the next run's start at the
    # latest): whatever is unfinished then ends as `error`, and the run is recorded as ended.
    run_deadline_h: float = Field(default=20.0, gt=0, le=24 * 7)


class Schedule(BaseModel):
    daily_at: str = Field(default="12:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    timezone: str = "America/Los_Angeles"

    @model_validator(mode="after")
    def _known_zone(self) -> Schedule:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        return self

    def _at(self, day: dt.date) -> dt.datetime:
        hour, minute = (int(part) for part in self.daily_at.split(":"))
        # Anchored in the zone for that very day: the offset differs across DST changes.
        return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(self.timezone))

    def latest_start(self, now: dt.datetime) -> dt.datetime:
        """The latest daily start at or before `now`, in UTC."""
        local = now.astimezone(ZoneInfo(self.timezone))
        start = self._at(local.date())
        if start > local:
            start = self._at(local.date() - dt.timedelta(days=1))
        return start.astimezone(dt.UTC)

    def next_start(self, now: dt.datetime) -> dt.datetime:
        """The first daily start strictly after `now`, in UTC."""
        local = now.astimezone(ZoneInfo(self.timezone))
        start = self._at(local.date())
        if start <= local:
            start = self._at(local.date() + dt.timedelta(days=1))
        return start.astimezone(dt.UTC)


class CopyPolicy(StrEnum):
    NO_EARN = "no-earn"  # a flagged copy earns nothing
    FLAG_ONLY = "flag-only"  # shown with its evidence, earns as if it were not flagged


class NoWinner(StrEnum):
    EQUAL = "equal"  # everyone valid shares equally
    UID = "uid"  # all to `no_winner_uid` (e.g. the subnet owner)


class Contest(BaseModel):
    id: str
    description: str = ""
    baseline: Baseline
    gpu: str | None = None  # the target GPU as NVML names it; None = CPU
    weights: MetricWeights
    similarity_metric: SimilarityMetric
    similarity_floor: float = Field(ge=0, lt=1)
    # A measured ratio within this margin of 1 counts as 1 (a tie with the baseline): the spread
    # between repeated runs of the same code on the contest's hardware. See docs/benchmarks.md.
    noise_margin: float = Field(default=0.0, ge=0, lt=1)
    # Scores within this (relative) margin of the baseline's 1 or of an earlier commitment's score
    # are ties; a tie goes to the earliest commitment. See scoring/weights.py, docs/copies.md.
    tie_margin: float = Field(default=0.0, ge=0, lt=1)
    copy_policy: CopyPolicy = CopyPolicy.NO_EARN
    inputs: Inputs
    timeouts: Timeouts = Field(default_factory=lambda: Timeouts())
    schedule: Schedule = Field(default_factory=lambda: Schedule())
    no_winner: NoWinner = NoWinner.EQUAL
    no_winner_uid: int | None = None

    @model_validator(mode="after")
    def _uid_when_needed(self) -> Contest:
        if self.no_winner is NoWinner.UID and self.no_winner_uid is None:
            raise ValueError("no_winner = 'uid' needs no_winner_uid")
        return self


def load_contest(id_or_path: str) -> Contest:
    """A contest by id (a shipped file) or by TOML path. Returns a copy: callers may change it."""
    return _load(id_or_path).model_copy(deep=True)


@cache
def _load(id_or_path: str) -> Contest:
    path = Path(id_or_path)
    if not path.suffix:
        path = CONTESTS_DIR / f"{id_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONTESTS_DIR.glob("*.toml")))
        raise ValueError(f"unknown contest {id_or_path!r} (known: {known})")
    try:
        contest = Contest.model_validate(tomllib.loads(path.read_text()))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"contest file {path} is invalid: {exc}") from exc
    if contest.baseline.path is not None and not contest.baseline.path.is_absolute():
        contest.baseline.path = (path.parent / contest.baseline.path).resolve()
    return contest


def all_contests() -> list[Contest]:
    return [load_contest(str(p)) for p in sorted(CONTESTS_DIR.glob("*.toml"))]
