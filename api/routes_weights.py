"""Weights: those this validator set (`GET /v1/weights`) and those every validator of the subnet
set (`GET /v1/subnet/weights`, as the chain service last read them from chain)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from redis import Redis

from api.deps import RedisDep
from api.schemas import OwnWeights, SubnetWeightsPublic
from api.snapshot import NOT_MODIFIED, serve
from api.status import weights_status
from api.subnet_view import subnet_view
from state.chain import load_chain_status, load_subnet_weights, weights_history

router = APIRouter(tags=["weights"])


def own_weights(redis: Redis) -> OwnWeights:
    return OwnWeights(status=weights_status(load_chain_status(redis)), history=weights_history(redis))


def subnet_weights(redis: Redis) -> SubnetWeightsPublic:
    found = load_subnet_weights(redis)
    if found is None:
        raise HTTPException(404, "the subnet's weights have not been read yet (the chain service reads them "
                                 "every iteration; is `edgemaxx chain` running?)")
    return subnet_view(found)


@router.get("/v1/weights", response_model=OwnWeights, responses=NOT_MODIFIED)
async def get_own_weights(request: Request, redis: RedisDep) -> Response:
    """When this validator last set weights, from which runs, the vector, and every earlier set."""
    return await serve(request, "weights", lambda: own_weights(redis), versioned=False, max_age_s=5.0)


@router.get("/v1/subnet/weights", response_model=SubnetWeightsPublic,
            responses={404: {"description": "not read from chain yet"}, **NOT_MODIFIED})
async def get_subnet_weights(request: Request, redis: RedisDep) -> Response:
    """Every validator's weights (by stake, with when each last set them and its top miners), the
    stake-weighted consensus per miner, and how far each validator is from it."""
    return await serve(request, "subnet-weights", lambda: subnet_weights(redis), versioned=True)
