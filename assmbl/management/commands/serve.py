"""Run every process of the service in the foreground; Ctrl-C stops them all.

Embedded (``make run``): gunicorn, the SMTP listener, a Celery worker with beat, the
content worker (at a lower CPU priority) and the webhooks worker on the configured broker
(kombu's filesystem transport by default, so no server is needed).

Stack (``make run-stack``, ``serve --stack``): the production topology on one box. A
durable PostgreSQL cluster and a Redis server in ``DATA_DIR`` (started by
``scripts/pg.sh`` and ``scripts/redis.sh``, reused when already up, so a rerun is
idempotent), migrations, gunicorn (gthread, so long-polls do not pin a worker), several
Celery workers on Redis (the content queue's at a lower CPU priority), exactly one beat,
and the SMTP listener. On Ctrl-C the children stop first, then Redis and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from assmbl.devenv import devenv_update
from mail.smtp_tls import self_signed_ensure


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def web_command(http_port: int, web_workers: int, threads: int, host: str = "127.0.0.1") -> list[str]:
    return [
        _bin("gunicorn"),
        "assmbl.asgi:application",
        "--bind",
        f"{host}:{http_port}",
        "--workers",
        str(web_workers),
        # gunicorn's asyncio worker: the views run on `threads` threads of each worker, and a
        # long-poll or event stream waits on its event loop, holding none (assmbl/asgi.py).
        # Ours answers what gunicorn itself refuses with the JSON envelope.
        "--worker-class",
        "compat.gunicorn.ASGIWorker",
        "--threads",
        str(threads),
        # The longest request line gunicorn can bound (its default is 4094), so that an
        # over-long q or cursor reaches the API, which says what is wrong with it (the
        # longest query the schema allows fits); past these limits the worker answers
        # 414/431 itself. 8 KB a header, 100 headers.
        "--limit-request-line",
        "8190",
        "--limit-request-field_size",
        "8190",
        "--limit-request-fields",
        "100",
        "--timeout",
        "120",
        "--graceful-timeout",
        "20",
        "--access-logfile",
        "-",
        # gunicorn's default is one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn): a second
        # instance on the machine would unlink the first one's socket and take it over.
        "--control-socket",
        str(settings.DATA_DIR / "gunicorn.ctl"),
    ]


def smtp_commands(smtp_port: int, listeners: int = 1) -> dict[str, list[str]]:
    """One listener, or several sharing the port (``SO_REUSEPORT``): a listener is one
    Python process, so it uses at most one core."""
    command = [sys.executable, "manage.py", "smtpd", "--host", settings.SMTP_HOST, "--port", str(smtp_port)]
    if listeners <= 1:
        return {"smtp": command}
    return {f"smtp{n}": [*command, "--reuse-port"] for n in range(1, listeners + 1)}


def _celery(*args: str) -> list[str]:
    return [_bin("celery"), "-A", "assmbl", *args]


def _worker(queues: str, hostname: str, *extra: str) -> list[str]:
    """A Celery worker consuming ``queues`` (comma-separated), named ``hostname``@host."""
    return _celery("worker", "--queues", queues, "--hostname", f"{hostname}@%h", "--loglevel", "INFO", *extra)


def webhooks_worker_command(*extra: str) -> list[str]:
    """The webhooks queue's own worker: threads, since an attempt waits on the receiver (up
    to WEBHOOKS_TIMEOUT_SECONDS), not on the CPU, and one process holds them all."""
    concurrency = str(settings.WEBHOOKS_WORKER_CONCURRENCY)
    return _worker("webhooks", "webhooks", "--pool", "threads", "--concurrency", concurrency, *extra)


def content_worker_command(concurrency: int, *extra: str) -> list[str]:
    """The content queue's own worker: what a model reads of each new mail, and attachments
    as text. It consumes nothing else, so it runs at CONTENT_WORKER_NICE (assmbl/celery.py):
    under a burst it takes the CPU that indexing leaves, and catches up after."""
    return _worker("content", "content", "--concurrency", str(concurrency), *extra)


def async_commit(name: str) -> bool:
    """Whether the process ``name`` of the stack commits without waiting for the WAL flush:
    the ingest workers and the content worker, whose writes are redone from the stored bytes
    (a lost content row is computed on the next read)."""
    return name.startswith("worker") or name == "content"


def embedded_processes(
    http_port: int, smtp_port: int, web_workers: int, celery_concurrency: int, smtp_listeners: int = 1
) -> dict[str, list[str]]:
    return {
        "web": web_command(http_port, web_workers, 4),
        **smtp_commands(smtp_port, smtp_listeners),
        # Mail (indexing, sending, housekeeping), content and webhooks on separate workers:
        # attempts to a receiver that is down never hold a slot that a mail waits for, and
        # content extraction never takes the CPU from indexing.
        "worker": _worker(
            "ingest,send,celery",
            "worker",
            "--beat",
            "--concurrency",
            str(celery_concurrency),
            "--schedule",
            str(settings.DATA_DIR / "celerybeat-schedule"),
        ),
        "content": content_worker_command(celery_concurrency),
        "webhooks": webhooks_worker_command(),
    }


def stack_processes(
    *,
    http_port: int,
    smtp_port: int,
    web_workers: int,
    web_threads: int,
    celery_workers: int,
    celery_concurrency: int,
    smtp_listeners: int = 1,
) -> dict[str, list[str]]:
    """The long-running processes of the production topology (engines excluded)."""
    procs: dict[str, list[str]] = {
        "web": web_command(http_port, web_workers, web_threads),
        **smtp_commands(smtp_port, smtp_listeners),
        # Exactly one beat in the whole deployment, or periodic tasks run twice.
        "beat": _celery("beat", "--loglevel", "INFO", "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")),
    }
    # One set of workers per queue, so neither sending, content nor webhook attempts can hold
    # up indexing: worker1..N index mail, "send" sends it and does the housekeeping, "content"
    # computes what a model reads (at a lower CPU priority), "webhooks" makes the attempts.
    quiet = ("--without-gossip", "--without-mingle")
    concurrency = ("--concurrency", str(celery_concurrency))
    for n in range(1, celery_workers + 1):
        procs[f"worker{n}"] = _worker("ingest", f"worker{n}", *concurrency, *quiet)
    procs["send"] = _worker("send,celery", "send", *concurrency, *quiet)
    procs["content"] = content_worker_command(celery_concurrency, *quiet)
    procs["webhooks"] = webhooks_worker_command(*quiet)
    return procs


def served_env(http_port: int) -> dict[str, str]:
    """The environment of every process: HTTP_PORT is where the web server listens, from
    which the settings derive PUBLIC_BASE_URL when it is not set."""
    return {**os.environ, "HTTP_PORT": str(http_port), **smtp_tls_env()}


def smtp_tls_env() -> dict[str, str]:
    """STARTTLS for the SMTP listener: without SMTP_TLS_CERT, a self-signed pair made once
    in DATA_DIR (what a development box needs; docs/smtp.md says how to use a real one)."""
    if settings.SMTP_TLS_CERT:
        return {}
    cert, key = self_signed_ensure(Path(settings.DATA_DIR), settings.MAIL_DOMAIN)
    return {"SMTP_TLS_CERT": str(cert), "SMTP_TLS_KEY": str(key)}


def broker_folders() -> None:
    for folder in getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).values():
        if isinstance(folder, str):
            os.makedirs(folder, exist_ok=True)


@dataclass
class Engines:
    """PostgreSQL and Redis in DATA_DIR, started through the scripts the tests use."""

    data_dir: Path
    pg_port: int
    redis_port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def scripts(self) -> Path:
        return Path(settings.BASE_DIR) / "scripts"

    def _script(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        # Own session: the terminal's Ctrl-C must reach us, not the engines, so that they
        # stop last, after every process that writes to them.
        out = subprocess.run(
            [str(self.scripts / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            start_new_session=True,
            env={**os.environ, **(extra_env or {})},
        )
        return out.stdout.strip()

    def start(self) -> dict[str, str]:
        database_url = self._script(
            "pg.sh", "start", str(self.data_dir / "pg"), str(self.pg_port), extra_env={"PG_DURABLE": "1"}
        )
        redis_url = self._script("redis.sh", "start", str(self.data_dir / "redis"), str(self.redis_port))
        base = redis_url.rsplit("/", 1)[0]
        self.env = {
            "DATABASE_URL": os.environ.get("STACK_DATABASE_URL") or database_url,
            "CELERY_BROKER_URL": f"{base}/0",
            "CACHE_URL": f"{base}/1",
            "DB_CONN_MAX_AGE": os.environ.get("DB_CONN_MAX_AGE", "60"),
        }
        return self.env

    def stop(self) -> None:
        for args in (("redis.sh", "stop", str(self.data_dir / "redis")), ("pg.sh", "stop", str(self.data_dir / "pg"))):
            try:
                self._script(*args)
            except subprocess.CalledProcessError as exc:
                sys.stderr.write(f"{args[0]} stop failed: {exc.stderr}\n")


def supervise(
    commands: dict[str, list[str]], env: dict[str, str], write: Any, overrides: dict[str, dict[str, str]] | None = None
) -> int:
    """Start every command in its own session, wait for Ctrl-C/SIGTERM or the first exit,
    then stop them all (SIGTERM, 10 s grace, SIGKILL). Returns the first non-zero code."""
    procs = {
        name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True, env=(overrides or {}).get(name, env))
        for name, cmd in commands.items()
    }
    stopping = False
    code = 0

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    write(f"{name} exited with {proc.returncode}; stopping the rest")
                    code = code or proc.returncode or 1
                    stopping = True
            time.sleep(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


class Command(BaseCommand):
    help = "Run the web server, SMTP listener and Celery together in the foreground (--stack: on PostgreSQL and Redis)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", "8000")))
        parser.add_argument("--smtp-port", type=int, default=settings.SMTP_PORT)
        parser.add_argument(
            "--smtp-listeners",
            type=int,
            default=int(os.environ.get("SMTP_LISTENERS", "1")),
            help="SMTP listener processes sharing the port (SO_REUSEPORT)",
        )
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
        parser.add_argument("--web-threads", type=int, default=int(os.environ.get("WEB_THREADS", "8")))
        parser.add_argument("--celery-workers", type=int, default=int(os.environ.get("CELERY_WORKERS", "2")))
        parser.add_argument("--celery-concurrency", type=int, default=int(os.environ.get("CELERY_CONCURRENCY", "2")))
        parser.add_argument("--stack", action="store_true", help="production topology: PostgreSQL + Redis in DATA_DIR")
        parser.add_argument("--pg-port", type=int, default=int(os.environ.get("PG_PORT", "54320")))
        parser.add_argument("--redis-port", type=int, default=int(os.environ.get("REDIS_PORT", "63790")))
        parser.add_argument(
            "--demo-agent", action="store_true", help="with --stack: create the demo agent after migrating"
        )
        parser.add_argument(
            "--no-engines", action="store_true", help="with --stack: use DATABASE_URL/CELERY_BROKER_URL as set"
        )

    def handle(self, *args: Any, stack: bool, **opts: Any) -> None:
        if stack:
            self.handle_stack(**opts)
            return
        broker_folders()
        code = supervise(
            embedded_processes(
                opts["http_port"],
                opts["smtp_port"],
                opts["web_workers"],
                opts["celery_concurrency"],
                opts["smtp_listeners"],
            ),
            served_env(opts["http_port"]),
            self.stderr.write,
        )
        self.stdout.write("stopped")
        if code:
            raise SystemExit(code)

    def handle_stack(self, **opts: Any) -> None:
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        engines = Engines(data_dir, opts["pg_port"], opts["redis_port"])
        env = served_env(opts["http_port"])
        code = 0
        try:
            if not opts["no_engines"]:
                try:
                    env.update(engines.start())
                    devenv_update(engines.env)
                except subprocess.CalledProcessError as exc:
                    raise CommandError(f"could not start the engines: {exc.stderr}") from exc
            self.stdout.write(
                "stack: "
                + ", ".join(f"{k}={env.get(k, '')}" for k in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"))
            )
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=settings.BASE_DIR,
                env=env,
                check=True,
            )
            if opts["demo_agent"]:
                subprocess.run([sys.executable, "manage.py", "demo_agent"], cwd=settings.BASE_DIR, env=env, check=True)
            commands = stack_processes(
                http_port=opts["http_port"],
                smtp_port=opts["smtp_port"],
                web_workers=opts["web_workers"],
                web_threads=opts["web_threads"],
                celery_workers=opts["celery_workers"],
                celery_concurrency=opts["celery_concurrency"],
                smtp_listeners=opts["smtp_listeners"],
            )
            self.stdout.write(
                f"stack: {', '.join(commands)} on http://127.0.0.1:{opts['http_port']} smtp 127.0.0.1:{opts['smtp_port']}"
            )
            worker_env = {**env, "DB_SYNCHRONOUS_COMMIT": os.environ.get("WORKER_SYNCHRONOUS_COMMIT", "off")}
            code = supervise(
                commands, env, self.stderr.write, overrides={n: worker_env for n in commands if async_commit(n)}
            )
        finally:
            if not opts["no_engines"]:
                engines.stop()
            self.stdout.write("stopped")
        if code:
            raise SystemExit(code)
