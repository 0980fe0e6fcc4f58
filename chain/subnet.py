"""The weights every validator of the subnet has set, as the chain holds them.

Two reads through the SDK, pinned to one block: the metagraph (hotkeys, stake, validator permit,
the block each neuron last set weights at: `LastUpdate`) and the weights matrix
(`SubtensorModule.Weights`, one row per validator, normalised to fractions by the SDK). On
commit-reveal subnets a row changes only when its commit is revealed.
"""

from __future__ import annotations

from typing import Any

from state.records import SubnetWeights, ValidatorWeights


def _stake(neuron: Any) -> float:
    total = getattr(neuron, "total_stake", None)
    # On a subnet the stake is its alpha (`.tao` refuses it): `amount` is in the balance's own unit.
    return float(total.amount) if total is not None else 0.0


def read_subnet_weights(sub: Any, netuid: int, block: int) -> SubnetWeights:
    """Every row with weights, and every neuron with a validator permit (maybe without weights yet)."""
    metagraph = sub.subnets.metagraph(netuid, block=block, commitments=False)
    rows: dict[int, dict[int, float]] = sub.weights.weights(netuid, block=block)
    neurons = list(metagraph.neurons) if metagraph else []
    validators = []
    for neuron in neurons:
        row = rows.get(neuron.uid) or {}
        if not row and not neuron.validator_permit:
            continue
        last = int(neuron.last_update or 0)
        validators.append(ValidatorWeights(
            uid=neuron.uid, hotkey=neuron.hotkey, stake=_stake(neuron), validator_permit=bool(neuron.validator_permit),
            last_update=last or None, weights={int(uid): float(w) for uid, w in row.items()}))
    validators.sort(key=lambda v: (-v.stake, v.uid))
    return SubnetWeights(netuid=netuid, block=block, hotkeys=[n.hotkey for n in neurons], validators=validators)
