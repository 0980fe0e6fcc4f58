"""An in-process chain behind the bittensor SDK's `Subtensor(substrate=...)` hook.

The SDK runs for real (its reads, decoding, SetWeights preflight and composition); only the
node is fake: storage is a dict, blocks are numbered with 12 s timestamps and sha256 hashes,
and submitted calls are applied to the storage the way the runtime would (commitments stored
with their block, weights as the validator's row of `Weights` with its `LastUpdate`). Other
validators' weights are set with `set_weights` (what their own extrinsics would have stored), and
the metagraph carries each neuron's stake, validator permit and last update.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bittensor.balance import Balance
from bittensor.result import ExtrinsicResult

GENESIS_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_MS = 12_000


class FakeChain:
    def __init__(self, netuid: int, head: int = 100_000) -> None:
        self.netuid = netuid
        self.head = head
        self.token_symbols: dict[int, str] = {}
        self.storage: dict[tuple[str, str, tuple], Any] = {}
        self.commitments: dict[str, dict] = {}  # hotkey → decoded CommitmentOf value
        self.neurons: list[dict] = []  # uid order: {"hotkey", "coldkey", "stake" (rao), "permit"}
        self.submitted: list[Any] = []
        self.fail_next: list[Exception] = []  # raised by the next reads, one each
        self.connects = 0
        self._numbers: dict[str, int] = {}

    # ---------------------------------------------------------------- test helpers

    def block_hash_of(self, number: int) -> str:
        block_hash = "0x" + hashlib.sha256(f"block-{number}".encode()).hexdigest()
        self._numbers[block_hash] = number
        return block_hash

    def timestamp_ms(self, number: int) -> int:
        return GENESIS_MS + number * BLOCK_MS

    def register(self, hotkey: str, coldkey: str, *, stake_tao: float = 0.0, permit: bool = False) -> int:
        self.neurons.append({"hotkey": hotkey, "coldkey": coldkey, "stake": int(stake_tao * 1e9), "permit": permit})
        uid = len(self.neurons) - 1
        self.storage[("SubtensorModule", "Uids", (self.netuid, hotkey))] = uid
        return uid

    def set_weights(self, hotkey: str, weights: dict[int, int], block: int | None = None) -> None:
        """`hotkey`'s row of the weights matrix (u16 values, as the chain stores them), set at `block`."""
        uid = self.storage[("SubtensorModule", "Uids", (self.netuid, hotkey))]
        self._store_row(uid, sorted(weights.items()), self.head if block is None else block)

    def _store_row(self, uid: int, row: list[tuple[int, int]], block: int) -> None:
        self.storage[("SubtensorModule", "Weights", (self.netuid, uid))] = row
        last = list(self.storage.get(("SubtensorModule", "LastUpdate", (self.netuid,)), []) or [])
        last += [0] * (uid + 1 - len(last))
        last[uid] = block
        self.storage[("SubtensorModule", "LastUpdate", (self.netuid,))] = last

    def deregister(self, hotkey: str) -> None:
        self.neurons = [n if n["hotkey"] != hotkey else {"hotkey": f"replaced-{hotkey}", "coldkey": "x"}
                        for n in self.neurons]

    def commit(self, hotkey: str, data: bytes, block: int) -> None:
        self.commitments[hotkey] = {"block": block, "deposit": 0,
                                    "info": {"fields": [{f"Raw{len(data)}": "0x" + data.hex()}]}}

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    # ---------------------------------------------------------------- the Substrate protocol

    def balance(self, rao: int, netuid: int = 0) -> Balance:
        return Balance.from_rao(rao)

    async def connect(self) -> None:
        self.connects += 1

    async def close(self) -> None:
        return None

    async def block_hash(self, block: int | None = None) -> str:
        return self.block_hash_of(self.head if block is None else block)

    async def block_number(self) -> int:
        self._maybe_fail()
        return self.head

    async def finalized_block_number(self) -> int:
        return self.head

    async def block_time(self) -> float:
        return BLOCK_MS / 1000

    async def spec_version(self) -> int:
        return 300

    async def get_block(self, block_number: int | None = None, block_hash: str | None = None) -> dict | None:
        number = self.head if block_number is None else block_number
        if number > self.head or number < 0:
            return None
        return {"header": {"number": number, "hash": self.block_hash_of(number)}, "extrinsics": []}

    def _number_of(self, block_hash: str | None) -> int:
        if block_hash is None:
            return self.head
        return self._numbers[block_hash]  # every hash the SDK holds came from block_hash()

    async def query(self, module: str, storage_function: str, params: list | None = None,
                    block_hash: str | None = None) -> Any:
        self._maybe_fail()
        if (module, storage_function) == ("Timestamp", "Now"):
            return self.timestamp_ms(self._number_of(block_hash))
        return self.storage.get((module, storage_function, tuple(params or [])))

    async def query_map(self, module: str, storage_function: str, params: list | None = None,
                        block_hash: str | None = None) -> list[tuple[Any, Any]]:
        self._maybe_fail()
        if (module, storage_function) == ("Commitments", "CommitmentOf"):
            return list(self.commitments.items())
        if (module, storage_function) == ("SubtensorModule", "Uids"):
            return [(n["hotkey"], uid) for uid, n in enumerate(self.neurons)]
        if (module, storage_function) == ("SubtensorModule", "Weights"):
            # A double map (netuid, uid) → row; the SDK iterates it under the netuid prefix.
            prefix = tuple(params or [])
            return [(key[len(prefix)], row) for (mod, name, key), row in sorted(self.storage.items())
                    if (mod, name) == (module, storage_function) and key[:len(prefix)] == prefix]
        return []

    async def query_batch(self, module: str, storage_function: str, param_sets: list[list],
                          block_hash: str | None = None) -> list[Any]:
        return [self.storage.get((module, storage_function, tuple(p))) for p in param_sets]

    async def runtime_call(self, api: str, method: str, params: list, block_hash: str | None = None) -> Any:
        self._maybe_fail()
        if method.endswith("metagraph"):
            last = list(self.storage.get(("SubtensorModule", "LastUpdate", (self.netuid,)), []) or [])
            return {"netuid": self.netuid, "block": self._number_of(block_hash), "tempo": 360, "last_step": 0,
                    "blocks_since_last_step": 0, "owner_hotkey": "owner", "owner_coldkey": "owner",
                    "network_registered_at": 0, "hotkeys": [n["hotkey"] for n in self.neurons],
                    "coldkeys": [n["coldkey"] for n in self.neurons],
                    "active": [True] * len(self.neurons),
                    "validator_permit": [n.get("permit", False) for n in self.neurons],
                    "total_stake": [n.get("stake", 0) for n in self.neurons],
                    "last_update": last + [0] * (len(self.neurons) - len(last))}
        raise NotImplementedError(f"{api}.{method}")

    async def constant(self, module: str, name: str) -> Any:
        return None

    async def compose(self, call: Any) -> Any:
        return call

    async def account_next_index(self, address: str) -> int:
        return 0

    async def submit(self, call: Any, keypair: Any, **_: Any) -> ExtrinsicResult:
        self.submitted.append((call, keypair.ss58_address))
        if call.function == "set_mechanism_weights":
            uid = self.storage[("SubtensorModule", "Uids", (self.netuid, keypair.ss58_address))]
            params = call.params
            self._store_row(uid, list(zip(params["dests"], params["weights"], strict=True)), self.head)
        elif call.function == "set_commitment":
            fields = [entry for group in call.params["info"]["fields"] for entry in group]
            self.commitments[keypair.ss58_address] = {
                "block": self.head, "deposit": 0,
                "info": {"fields": [{k: "0x" + bytes(v).hex() if isinstance(v, bytes | bytearray) else v
                                     for k, v in f.items()} for f in fields]}}
        return ExtrinsicResult(success=True, message="included", block_hash=self.block_hash_of(self.head))

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the fake chain does not implement {name}")
