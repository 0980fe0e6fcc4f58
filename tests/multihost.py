"""Two validator hosts on one machine: one Redis (with a password), and per host a Docker engine,
a data directory, a builder and a GPU worker (real `edgemaxx` processes, each with DOCKER_HOST on
its host's engine and EDGEMAXX_HOST its host's name). Host A uses the machine's engine; host B a
second dockerd (tests.dockerd). Shared by tests/test_multi_host.py and bench/multi_host_wait.py.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from redis import Redis

from edgemaxx.models import Backend, SourceKind, SubmissionSource
from edgemaxx.settings import Settings
from tests.conftest import TEST_DATA, fixture_path
from tests.contests import cpu_contest
from tests.dockerd import SecondEngine
from tests.service import RedisServer, Service, free_port, http_ready, wait_for

CONTEST = "multihost-cpu"


def contest_file(path: Path, *, inputs: int = 2, size: int = 128) -> Path:
    return cpu_contest(path, CONTEST, inputs=inputs, size=size, request_default_s=60)


@dataclass
class Host:
    name: str
    data_dir: Path
    docker_host: str | None  # None: the machine's own engine
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def builder(self) -> str:
        return f"{self.name}-builder"

    @property
    def worker(self) -> str:
        return f"{self.name}-gpu"


class TwoHosts:
    """Everything started on `__enter__` and removed on `__exit__`, whatever failed."""

    def __init__(self, tmp: Path, fixtures: list[str], *, heartbeat_ttl_s: int = 6,
                 backend: Backend = Backend.DOCKER) -> None:
        """`Backend.PROCESS`: no engines at all, each host builds its own venvs in its own data
        directory from nothing (bench/multi_host_wait.py --backend process: builds that take time)."""
        tag = uuid.uuid4().hex[:6]
        self.backend = backend
        self.tmp = tmp
        self.fixtures = fixtures
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.contest = contest_file(tmp / "contest.toml")
        self.password = uuid.uuid4().hex
        self.redis_server = RedisServer(tmp / "redis", password=self.password)
        self.engine = SecondEngine()
        self.a = Host(f"mh-a-{tag}", TEST_DATA / f"multihost-a-{tag}", None)
        self.b = Host(f"mh-b-{tag}", TEST_DATA / f"multihost-b-{tag}",
                      self.engine.host if backend is Backend.DOCKER else None)
        self.api_port = free_port()
        self.api: Service | None = None

    @property
    def hosts(self) -> tuple[Host, Host]:
        return self.a, self.b

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def redis(self) -> Redis:
        return Redis.from_url(self.redis_server.url)

    def settings(self) -> Settings:
        return Settings(redis_url=self.redis_server.url, data_dir=self.a.data_dir, host=self.a.name,
                        prepare_retries=1, benchmark_retries=1)

    def parts(self) -> list[Service]:
        return [s for h in self.hosts for s in h.services.values()] + ([self.api] if self.api else [])

    # ------------------------------------------------------------ start

    def _seed_engine(self) -> None:
        """Host B's engine gets the base image and the fixtures' sandbox images from host A's, as a
        registry would give them (a pull by tag; the tags are content keys, so B's builder finds
        them and skips the build). B has no bridge, so it could not build with network anyway."""
        from images.prepare import prepare
        from sandbox.select import connect_docker

        settings = Settings(data_dir=self.a.data_dir, host=self.a.name)
        client = connect_docker()
        tags = {settings.base_image}
        for name in ["flux-baseline", *self.fixtures]:
            prepared = prepare(settings, SubmissionSource(kind=SourceKind.LOCAL, path=fixture_path(name)),
                               Backend.DOCKER, docker_client=client)
            tags.add(prepared.environment)
        client.close()
        self.engine.load_from_default_engine(*sorted(tags))

    def _env(self, host: Host) -> dict[str, str]:
        env = {**os.environ, "EDGEMAXX_REDIS_URL": self.redis_server.url, "EDGEMAXX_HOST": host.name,
               "EDGEMAXX_DATA_DIR": str(host.data_dir), "EDGEMAXX_SANDBOX_BACKEND": self.backend.value,
               "EDGEMAXX_SANDBOX_MEMORY_MB": "2048", "EDGEMAXX_WORKER_HEARTBEAT_TTL_S": str(self.heartbeat_ttl_s),
               "EDGEMAXX_PREPARE_RETRIES": "1", "EDGEMAXX_BENCHMARK_RETRIES": "1",
               "EDGEMAXX_API_PORT": str(self.api_port), "EDGEMAXX_SHUTDOWN_TIMEOUT_S": "10",
               # Two shared cores: one OpenMP thread per sandbox, or torch's threads spin against each other.
               "EDGEMAXX_SANDBOX_EXTRA_ENV": '{"OMP_NUM_THREADS": "1"}', "PYTHONUNBUFFERED": "1"}
        env.pop("DOCKER_HOST", None)
        if host.docker_host:
            env["DOCKER_HOST"] = host.docker_host
        return env

    def __enter__(self) -> TwoHosts:
        try:
            for host in self.hosts:
                host.data_dir.mkdir(parents=True, exist_ok=True)
                os.chmod(host.data_dir, 0o755)
            self.redis_server.start()
            if self.backend is Backend.DOCKER:
                self.engine.remove()  # an earlier run's, if CI kept it
                self.engine.start()
                self._seed_engine()
            self.api = Service(["api"], self._env(self.a), self.tmp / "api.log").start()
            for host in self.hosts:
                env = self._env(host)
                host.services["builder"] = Service(["builder", "--name", host.builder], env,
                                                   self.tmp / f"{host.name}-builder.log").start()
                host.services["worker"] = Service(["worker", "--name", host.worker, "--contest", str(self.contest)],
                                                  env, self.tmp / f"{host.name}-worker.log").start()
            wait_for(lambda: http_ready(f"{self.base}/v1/status"), 90, "the API", self.parts())
            wait_for(self.both_live, 180, "both hosts' builder and worker", self.parts())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def both_live(self) -> bool:
        from worker.queues import live_hosts

        return set(live_hosts(self.redis(), CONTEST)) == {self.a.name, self.b.name}

    # ------------------------------------------------------------ stop

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for part in self.parts():
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - teardown goes on
                part.kill_tree()
        if self.backend is Backend.DOCKER:
            self.engine.remove()
        if self.redis_server.proc is not None and self.redis_server.proc.poll() is None:
            self.redis_server.kill()
        for host in self.hosts:
            shutil.rmtree(host.data_dir, ignore_errors=True)
