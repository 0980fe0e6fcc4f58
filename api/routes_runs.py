"""Run history: `GET /v1/runs` (newest first, paginated) and `GET /v1/runs/{id}`.

Runs are kept `history_days` after they end, with their leaderboard (per-input similarity, the
card that measured each result), the weights they earned and every time those were set on chain.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from api.deps import RedisDep
from api.schemas import RunDetail, RunPage
from api.views import run_detail, run_summary
from state import history, runs

router = APIRouter(tags=["runs"])

RUN_ID = r"^[a-z0-9][a-z0-9-]{0,127}$"
CONTEST_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"


@router.get("/v1/runs", response_model=RunPage)
def list_runs(
    redis: RedisDep,
    contest: Annotated[str | None, Query(pattern=CONTEST_ID, description="only this contest's runs")] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RunPage:
    ids, total = history.run_ids(redis, contest, offset, limit)
    summaries = [run_summary(redis, run) for run in (runs.load_run(redis, i) for i in ids) if run is not None]
    following = offset + limit
    return RunPage(runs=summaries, total=total, offset=offset, limit=limit,
                   next_offset=following if following < total else None)


@router.get("/v1/runs/{run_id}", response_model=RunDetail,
            responses={404: {"description": "no such run (or it was pruned)"}})
def get_run(redis: RedisDep, run_id: Annotated[str, Path(pattern=RUN_ID)]) -> RunDetail:
    run = runs.load_run(redis, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id} (runs are kept for a limited number of days after they end)")
    return run_detail(redis, run)
