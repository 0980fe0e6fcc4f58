"""GET /v1/contests/{id}: baseline metrics, leaderboard and inputs seed of the current run."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import Response
from redis import Redis

from api.deps import RedisDep
from api.schemas import ContestPublic
from api.snapshot import NOT_MODIFIED, serve
from api.views import baselines, leaderboard
from edgemaxx.contest import load_contest
from state import runs

router = APIRouter(tags=["contests"])

ContestId = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="contest id, e.g. flux-4090")


def contest_view(redis: Redis, contest_id: str) -> ContestPublic:
    try:
        definition = load_contest(contest_id)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from exc
    run = runs.current_run(redis, contest_id)
    if run is None:
        raise HTTPException(404, f"contest {contest_id} has no run yet")
    return ContestPublic(id=definition.id, description=definition.description, run_id=run.id,
                         seed=run.seed, inputs=len(run.inputs), baselines=baselines(redis, run),
                         leaderboard=leaderboard(redis, run, run.rules() if run.definition else definition))


@router.get("/v1/contests/{contest_id}", response_model=ContestPublic,
            responses={404: {"description": "unknown contest, or no run yet"}, **NOT_MODIFIED})
async def contest(request: Request, redis: RedisDep, contest_id: str = ContestId) -> Response:
    """The leaderboard of the contest's current run (from the snapshot: rebuilt when run state changes)."""
    return await serve(request, f"contest:{contest_id}", lambda: contest_view(redis, contest_id), versioned=True)
