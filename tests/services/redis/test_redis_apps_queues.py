"""Task queues over loopback: RQ, Celery, huey, arq and dramatiq run jobs through our Redis.

Each test writes a small tasks module, enqueues from this process, starts
the library's own worker as a separate process (in burst mode where the
library has one, else stopped once the result is in) and reads the
result back through the library.  Timeouts are only a safety net.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import RunningServer, serve

pytestmark = pytest.mark.heavy

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("queues")) as srv:
        yield srv


@pytest.fixture
def url(server: RunningServer) -> str:
    host, port = server.address()
    client = redis.Redis(host=host, port=port, socket_timeout=10)
    client.flushall()
    client.close()
    return f"redis://{host}:{port}/0"


def _tasks(tmp_path: Path, source: str) -> dict[str, str]:
    """Write tasks.py and return the environment a worker process needs to import it."""
    (tmp_path / "tasks.py").write_text(textwrap.dedent(source))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return env


def _start(args: list[str], tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(tmp_path / "worker.log", "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(worker: subprocess.Popen[bytes], tmp_path: Path) -> str:
    """Stop a worker (SIGTERM, then SIGKILL) and return its log."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    return (tmp_path / "worker.log").read_text(errors="replace")


# --------------------------------------------------------------------------- RQ


def test_rq_burst_worker_runs_the_job(url: str, tmp_path: Path) -> None:
    from rq import Queue
    from rq.job import JobStatus

    env = _tasks(
        tmp_path,
        """
        def add(a, b):
            return a + b

        def fail():
            raise ValueError("meant to fail")
        """,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        connection = redis.Redis.from_url(url, socket_timeout=10)
        queue = Queue("default", connection=connection)
        job = queue.enqueue("tasks.add", 2, 3, result_ttl=600)
        failing = queue.enqueue("tasks.fail")
        done = subprocess.run(
            [str(BIN / "rq"), "worker", "--burst", "--url", url, "default"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        assert job.get_status(refresh=True) == JobStatus.FINISHED
        assert job.return_value() == 5
        assert failing.get_status(refresh=True) == JobStatus.FAILED
        assert "meant to fail" in (failing.latest_result().exc_string or "")
        assert len(queue) == 0
        connection.close()
    finally:
        sys.path.remove(str(tmp_path))


# --------------------------------------------------------------------------- Celery


def test_celery_round_trip_with_redis_broker_and_backend(url: str, tmp_path: Path) -> None:
    env = _tasks(
        tmp_path,
        """
        import os
        from celery import Celery

        app = Celery("tasks", broker=os.environ["QUEUE_URL"], backend=os.environ["QUEUE_URL"])
        app.conf.broker_connection_retry_on_startup = True
        app.conf.worker_hijack_root_logger = False

        @app.task
        def add(a, b):
            return a + b
        """,
    )
    env["QUEUE_URL"] = url
    os.environ["QUEUE_URL"] = url
    sys.path.insert(0, str(tmp_path))
    worker = _start(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        tmp_path,
        env,
    )
    try:
        import tasks  # type: ignore[import-not-found]

        results = [tasks.add.delay(i, 10) for i in range(3)]
        assert [r.get(timeout=60) for r in results] == [10, 11, 12]
        assert all(r.successful() for r in results)
    finally:
        log = _stop(worker, tmp_path)
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tasks", None)
        os.environ.pop("QUEUE_URL", None)
    assert "Unrecoverable error" not in log, log[-3000:]


# --------------------------------------------------------------------------- huey


def test_huey_consumer_runs_the_task(url: str, tmp_path: Path) -> None:
    env = _tasks(
        tmp_path,
        """
        import os
        from huey import RedisHuey

        huey = RedisHuey("linechat-test", url=os.environ["QUEUE_URL"])

        @huey.task()
        def add(a, b):
            return a + b
        """,
    )
    env["QUEUE_URL"] = url
    os.environ["QUEUE_URL"] = url
    sys.path.insert(0, str(tmp_path))
    worker = _start([str(BIN / "huey_consumer"), "tasks.huey", "-w", "1", "-k", "thread"], tmp_path, env)
    try:
        import tasks

        results = [tasks.add(i, 100) for i in range(3)]
        assert [r.get(blocking=True, timeout=60) for r in results] == [100, 101, 102]
    finally:
        _stop(worker, tmp_path)
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tasks", None)
        os.environ.pop("QUEUE_URL", None)


# --------------------------------------------------------------------------- arq


def test_arq_burst_worker_runs_the_job(url: str, tmp_path: Path, server: RunningServer) -> None:
    pytest.importorskip("arq", reason="arq is installed apart from the test extra (pip install --no-deps arq)")
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.jobs import JobStatus

    host, port = server.address()
    env = _tasks(
        tmp_path,
        f"""
        from arq.connections import RedisSettings

        async def add(ctx, a, b):
            return a + b

        class WorkerSettings:
            functions = [add]
            redis_settings = RedisSettings(host={host!r}, port={port})
            burst = True
            poll_delay = 0.05
        """,
    )

    async def enqueue() -> list[str]:
        pool = await create_pool(RedisSettings(host=host, port=port))
        jobs = [await pool.enqueue_job("add", i, 1000) for i in range(3)]
        await pool.aclose()
        return [job.job_id for job in jobs if job is not None]

    async def results(ids: list[str]) -> list[object]:
        from arq.jobs import Job

        pool = await create_pool(RedisSettings(host=host, port=port))
        out = []
        for job_id in ids:
            job = Job(job_id, pool)
            assert await job.status() == JobStatus.complete
            out.append(await job.result(timeout=10))
        await pool.aclose()
        return out

    ids = asyncio.run(enqueue())
    assert len(ids) == 3
    done = subprocess.run(
        [str(BIN / "arq"), "tasks.WorkerSettings", "--burst"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")[-2000:]
    assert asyncio.run(results(ids)) == [1000, 1001, 1002]


# --------------------------------------------------------------------------- dramatiq


def test_dramatiq_worker_runs_the_actor_and_stores_the_result(url: str, tmp_path: Path) -> None:
    env = _tasks(
        tmp_path,
        """
        import os
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
        from dramatiq.results import Results
        from dramatiq.results.backends import RedisBackend

        broker = RedisBroker(url=os.environ["QUEUE_URL"])
        broker.add_middleware(Results(backend=RedisBackend(url=os.environ["QUEUE_URL"])))
        dramatiq.set_broker(broker)

        @dramatiq.actor(store_results=True)
        def add(a, b):
            return a + b
        """,
    )
    env["QUEUE_URL"] = url
    os.environ["QUEUE_URL"] = url
    sys.path.insert(0, str(tmp_path))
    worker = _start([str(BIN / "dramatiq"), "tasks", "--processes", "1", "--threads", "1"], tmp_path, env)
    try:
        import tasks

        messages = [tasks.add.send(i, 7) for i in range(3)]
        assert [m.get_result(block=True, timeout=60_000) for m in messages] == [7, 8, 9]
    finally:
        _stop(worker, tmp_path)
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tasks", None)
        os.environ.pop("QUEUE_URL", None)
