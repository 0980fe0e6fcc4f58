"""Run state in Redis: the one owner of every key in `state.keys`.

Modules by what they hold: `runs` (contest runs, submission records, results, outputs,
baselines, benchmark order), `workers` (status, liveness, busy time), `checks` (miners'
pre-commit checks), `chain` (the chain service's status, this validator's weights history, the
subnet's weights as every validator set them), `metrics` (counters, durations),
`limits` (per-client rate limits and request nonces). Everything else calls these. Writes of run
state bump one counter (`runs.version`), so a reader keeping a rendered copy knows when it is stale.
"""
