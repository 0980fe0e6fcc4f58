"""Run history and what the dashboard shows of a run: `GET /v1/runs` (newest first, paginated),
`GET /v1/runs/{id}` (leaderboard, baselines, weights), its inputs, a submission in it, and its
output images.

Runs are kept `history_days` after they end, with their leaderboard (per-input similarity, the
card that measured each result), the weights they earned and every time those were set on chain;
of their images, the baseline's and the best few submissions' (`state.runs.retire_outputs`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from redis import Redis

from api.deps import RedisDep
from api.schemas import RunDetail, RunInputs, RunOutputs, RunPage, SubmissionDetail
from api.snapshot import NOT_MODIFIED, etag_of, not_modified, serve
from api.views import inputs_of, run_detail, run_summary, submission_detail
from state import history, runs
from state.records import ContestRun

router = APIRouter(tags=["runs"])

RUN_ID = r"^[a-z0-9][a-z0-9-]{0,127}$"
CONTEST_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"
HOTKEY = r"^[A-Za-z0-9_.-]{1,64}$"
# A hotkey, or a baseline: `baseline@WORKER`, or `baseline` for whichever worker's is kept.
OUTPUT_NAME = r"^(baseline(@[A-Za-z0-9_.:-]{1,128})?|[A-Za-z0-9_.-]{1,64})$"
GONE = "(runs are kept for a limited number of days after they end)"
RunId = Annotated[str, Path(pattern=RUN_ID)]


def _run(redis: Redis, run_id: str) -> ContestRun:
    run = runs.load_run(redis, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id} {GONE}")
    return run


def _page(redis: Redis, contest: str | None, offset: int, limit: int) -> RunPage:
    ids, total = history.run_ids(redis, contest, offset, limit)
    summaries = [run_summary(redis, run) for run in (runs.load_run(redis, i) for i in ids) if run is not None]
    following = offset + limit
    return RunPage(runs=summaries, total=total, offset=offset, limit=limit,
                   next_offset=following if following < total else None)


@router.get("/v1/runs", response_model=RunPage, responses=NOT_MODIFIED)
async def list_runs(
    request: Request,
    redis: RedisDep,
    contest: Annotated[str | None, Query(pattern=CONTEST_ID, description="only this contest's runs")] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    return await serve(request, f"runs:{contest}:{offset}:{limit}", lambda: _page(redis, contest, offset, limit),
                       versioned=True)


@router.get("/v1/runs/{run_id}", response_model=RunDetail,
            responses={404: {"description": "no such run (or it was pruned)"}, **NOT_MODIFIED})
async def get_run(request: Request, redis: RedisDep, run_id: RunId) -> Response:
    """A run in full: its rules, baselines, leaderboard (every metric, score terms, flags), weights."""
    return await serve(request, f"run:{run_id}", lambda: run_detail(redis, _run(redis, run_id)), versioned=True)


@router.get("/v1/runs/{run_id}/inputs", response_model=RunInputs,
            responses={404: {"description": "no such run"}, **NOT_MODIFIED})
async def get_inputs(request: Request, redis: RedisDep, run_id: RunId) -> Response:
    """The requests of the run (prompt, size, seed), in input order."""
    return await serve(request, f"inputs:{run_id}",
                       lambda: RunInputs(run_id=run_id, inputs=inputs_of(_run(redis, run_id))), versioned=True)


@router.get("/v1/runs/{run_id}/submissions/{hotkey}", response_model=SubmissionDetail,
            responses={404: {"description": "no such run, or no such submission in it"}, **NOT_MODIFIED})
async def get_submission_in_run(request: Request, redis: RedisDep, run_id: RunId,
                                hotkey: Annotated[str, Path(pattern=HOTKEY)]) -> Response:
    """One submission of a run: its record, rank and flags, the baseline it was measured against, the
    inputs, and which output images are kept."""
    def build() -> SubmissionDetail:
        run = _run(redis, run_id)
        record = runs.load_record(redis, run_id, hotkey)
        if record is None:
            raise HTTPException(404, f"no submission from {hotkey} in run {run_id}")
        return submission_detail(redis, run, record)

    return await serve(request, f"submission:{run_id}:{hotkey}", build, versioned=True)


def _outputs(redis: Redis, run_id: str) -> RunOutputs:
    _run(redis, run_id)
    return RunOutputs(run_id=run_id, outputs={name: runs.output_indices(redis, run_id, name)
                                              for name in runs.output_names(redis, run_id)})


@router.get("/v1/runs/{run_id}/outputs", response_model=RunOutputs,
            responses={404: {"description": "no such run"}, **NOT_MODIFIED})
async def list_outputs(request: Request, redis: RedisDep, run_id: RunId) -> Response:
    return await serve(request, f"outputs:{run_id}", lambda: _outputs(redis, run_id), versioned=True)


def _image_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"  # whatever a submission answered: never rendered as markup


def _output(redis: Redis, run_id: str, name: str, index: int) -> tuple[ContestRun, bytes]:
    run = _run(redis, run_id)
    if name == "baseline":  # whichever worker's baseline the run still holds
        name = next((n for n in runs.output_names(redis, run_id) if n.startswith("baseline@")), "baseline@")
    data = runs.load_output(redis, run_id, name, index)
    if data is None:
        raise HTTPException(404, f"no output {index} of {name} in run {run_id}: never produced, or not kept "
                                 f"(an ended run keeps the baseline's and the best submissions' images)")
    return run, data


@router.get("/v1/runs/{run_id}/outputs/{name}/{index}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the image, as the submission sent it"},
                       404: {"description": "no such run, output, or not kept"}, **NOT_MODIFIED})
async def get_output(request: Request, redis: RedisDep, run_id: RunId,
                     name: Annotated[str, Path(pattern=OUTPUT_NAME, description="a hotkey, `baseline@WORKER`, "
                                               "or `baseline`")],
                     index: Annotated[int, Path(ge=0, le=10_000, description="input index")]) -> Response:
    """One output image of a run, the bytes as the submission (or baseline) answered them."""
    run, data = await asyncio.to_thread(_output, redis, run_id, name, index)
    etag = etag_of(data)
    # An ended run's images never change; a running run's change if the hotkey commits again.
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400" if run.end else "public, max-age=60",
               "X-Content-Type-Options": "nosniff"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=_image_type(data), headers=headers)
