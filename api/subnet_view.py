"""Where the subnet's validators agree and where they do not, from the weights they set.

The consensus is the stake-weighted mean of the validators' rows (each row sums to 1, as the SDK
gives it): what the chain's own consensus starts from. A validator's agreement is 1 − half the L1
distance of its row to that consensus (1: the same vector; 0: no miner in common). Per miner, the
spread between the lowest and highest weight any validator gives it shows where they part.
"""

from __future__ import annotations

from api.schemas import MinerConsensus, MinerWeight, SubnetWeightsPublic, ValidatorWeightsPublic
from state.records import SubnetWeights

TOP = 5  # largest weights shown per validator


def consensus(rows: list[tuple[float, dict[int, float]]]) -> dict[int, float]:
    """Stake-weighted mean of the rows (stake, row); equal weights when nobody has stake."""
    total = sum(stake for stake, _ in rows)
    out: dict[int, float] = {}
    for stake, row in rows:
        share = stake / total if total > 0 else 1.0 / len(rows)
        for uid, weight in row.items():
            out[uid] = out.get(uid, 0.0) + share * weight
    return out


def agreement(row: dict[int, float], center: dict[int, float]) -> float:
    distance = sum(abs(row.get(uid, 0.0) - center.get(uid, 0.0)) for uid in set(row) | set(center))
    return max(0.0, 1.0 - distance / 2)


def subnet_view(weights: SubnetWeights) -> SubnetWeightsPublic:
    own_hotkey = weights.own_hotkey
    def hotkey(uid: int) -> str | None:
        return weights.hotkeys[uid] if 0 <= uid < len(weights.hotkeys) else None

    setting = [v for v in weights.validators if v.weights]
    center = consensus([(v.stake, v.weights) for v in setting]) if setting else {}
    stake_total = sum(v.stake for v in weights.validators)
    validators = []
    for v in weights.validators:
        top = sorted(v.weights.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        validators.append(ValidatorWeightsPublic(
            uid=v.uid, hotkey=v.hotkey, stake=v.stake,
            stake_share=v.stake / stake_total if stake_total > 0 else 0.0,
            validator_permit=v.validator_permit, last_update=v.last_update,
            blocks_since_update=weights.block - v.last_update if v.last_update is not None else None,
            weights=v.weights, top=[MinerWeight(uid=u, hotkey=hotkey(u), weight=w) for u, w in top],
            agreement=agreement(v.weights, center) if v.weights else None,
            this_validator=own_hotkey is not None and v.hotkey == own_hotkey))
    miners = []
    for uid, mean in sorted(center.items(), key=lambda kv: (-kv[1], kv[0])):
        given = [v.weights.get(uid, 0.0) for v in setting]
        miners.append(MinerConsensus(uid=uid, hotkey=hotkey(uid), consensus=mean, min=min(given), max=max(given),
                                     weighted_by=sum(1 for g in given if g > 0)))
    return SubnetWeightsPublic(netuid=weights.netuid, block=weights.block, read_at=weights.read_at,
                               error=weights.error, validators=validators, miners=miners)
