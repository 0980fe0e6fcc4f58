"""Runs inside an unprivileged container (no CAP_SYS_ADMIN, Docker's default seccomp: no
namespaces can be made, as on a RunPod host): picks the process sandbox's tier and benchmarks the
prepared submissions it is given, printing one JSON document. Used by test_unprivileged_host.py.

    python unprivileged_driver.py JOB_JSON
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path


def _listen_on_redis_port() -> None:
    """Something to reach on 127.0.0.1:6379 inside the container's own network namespace: a
    connect that got through would succeed, so only the sandbox can make it fail."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 6379))
    server.listen(8)

    def accept() -> None:
        while True:
            connection, _ = server.accept()
            connection.close()

    threading.Thread(target=accept, daemon=True).start()


def main() -> None:
    from edgemaxx.models import BackendChoice, PreparedSubmission, TextToImageRequest
    from edgemaxx.settings import Settings
    from sandbox.tiers import process_tier
    from worker.evaluate import benchmark, limits_for

    job = json.loads(sys.argv[1])
    _listen_on_redis_port()
    data = Path(job["data_dir"])
    aof = data / "redis" / "appendonly.aof"
    aof.parent.mkdir(parents=True)
    aof.write_text("SECRET-BASELINE-OUTPUT\n")
    aof.chmod(0o644)
    settings = Settings(data_dir=data, sandbox_backend=BackendChoice.PROCESS, owner="unprivileged",
                        sandbox_memory_mb=1024, sandbox_tmpfs_mb=256, wheelhouse=None,
                        sandbox_extra_env={"STEAL_TARGETS": f"{data}:{aof}:{job['envs_dir']}"})
    report = process_tier()
    out: dict = {"tier": report.tier, "detail": report.detail, "landlock_abi": report.landlock_abi,
                 "memory_guard": report.memory_guard, "describe": report.describe(), "runs": {}}
    requests = [TextToImageRequest(**r) for r in job["requests"]]
    for name, prepared in job["prepared"].items():
        submission = PreparedSubmission(**prepared)
        limits = limits_for(settings).model_copy(update={"load_timeout_s": 120, "request_timeout_s": 60})
        result = benchmark(settings, submission, requests, limits)
        out["runs"][name] = {"status": result.status, "reason": result.reason, "tier": result.tier,
                             "memory_guard": result.memory_guard, "log_tail": result.log_tail,
                             "outputs": [o.hex() if o else None for o in result.outputs]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
