"""Run state in Redis: the one owner of every key in `state.keys`.

Modules by what they hold: `runs` (contest runs, submission records, results, outputs,
baselines, benchmark order), `workers` (status, liveness, busy time), `checks` (miners'
pre-commit checks), `chain` (the chain service's status), `metrics` (counters, durations),
`limits` (per-client rate limits and request nonces). Everything else calls these.
"""
