#!/usr/bin/env python
"""End-to-end SMTP throughput: N concurrent smtplib clients send realistic ~5 KB mails to
the listener, counted until every one is indexed, against a null aiosmtpd sink (accepts
and drops) driven by the same clients on the same machine in the same run, before and
after the stack (the faster of the two is the baseline).

    python bench/smtp.py [--clients 64] [--messages 6000] [--engine postgres|sqlite]
                         [--workers 2] [--concurrency 2] [--listeners 1]

The system under test is the scale-out topology as ``make run-stack`` runs it:
``--listeners`` ``manage.py smtpd --reuse-port`` processes sharing the port, ``--workers``
ingest workers and the content worker (at CONTENT_WORKER_NICE), each with ``--concurrency``
prefork children, started from serve.py's ``stack_processes``, on Redis, on PostgreSQL
(durable: fsync on, the listener commits with synchronous_commit on, the workers with it
off, as run-stack sets them) or a SQLite file. Goal: >= 500 msg/s and >= 40 % of the sink.

No DNS leaves the machine: by default the listener trusts the Authentication-Results
header the bench mail carries, as it does behind a front MTA (``AUTHSERV_ID`` and
``AUTHSERV_TRUSTED_RELAYS=127.0.0.1``); ``--auth local`` runs the local SPF/DKIM checks
instead, with the offline resolver (every lookup empty, so DKIM verifies nothing), and
``--dns-latency-ms 20`` makes each of those lookups take as long as a real resolver would.

It prints the listener's acceptance rate (250s), the end-to-end rate (until every mail is
indexed), their ratio to the sink, how long after the last mail was indexed every content
row existed ("content done": the content worker yields the CPU under a burst and catches up
after), and the CPU seconds each part of the stack used until indexed and until content
done (from /proc), which shows where the two cores went.

``--starttls`` gives the listener a self-signed certificate and, after the plain phase,
measures the same load again with every client session in TLS (STARTTLS once per
session, as an MTA keeps its connection), then ``--handshakes`` sessions that only do
EHLO, STARTTLS, EHLO, QUIT: the listener's CPU per mail in TLS against plain, and per
handshake, in one run.
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PYTHON,
    ROOT,
    cleanup,
    cpu_ticks,
    disk_cost,
    django_setup,
    fresh_pg_database,
    machine,
    pg_start,
    pg_stop,
    pidfile,
    realistic_mail,
    redis_start,
    redis_stop,
    temp_dir,
    tree_ticks,
)

GOAL_RATE, GOAL_RATIO = 500.0, 0.40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, procs: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                client.noop()
            return
        except OSError:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a process of the stack exited during startup") from None
            time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}")


def client_tls() -> ssl.SSLContext:
    """An MTA's opportunistic TLS: encrypt, verify nothing (the certificate is self-signed)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def blast(port: int, mails: list[bytes], rcpt: str, clients: int, tls: bool = False) -> tuple[float, int]:
    """Send every mail over `clients` persistent connections (in TLS: STARTTLS first);
    returns (seconds, errors)."""
    errors = 0
    lock = threading.Lock()
    chunks = [mails[i::clients] for i in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def run(chunk: list[bytes]) -> None:
        nonlocal errors
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            if tls:
                client.starttls(context=client_tls())
            barrier.wait()
            for raw in chunk:
                try:
                    client.sendmail("bench@example.com", [rcpt], raw)
                except smtplib.SMTPException:
                    with lock:
                        errors += 1

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, errors


def handshakes(port: int, count: int, clients: int) -> float:
    """``count`` sessions of EHLO, STARTTLS, EHLO, QUIT over ``clients`` threads; seconds."""
    per_client = max(1, count // clients)
    context = client_tls()  # made once: loading the CA store costs more than a handshake

    def run() -> None:
        for _ in range(per_client):
            # A fixed EHLO name: smtplib's default looks up this machine's name every time.
            with smtplib.SMTP("127.0.0.1", port, timeout=60, local_hostname="bench.example") as client:
                client.starttls(context=context)
                client.ehlo()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def tls_phases(
    port: int, mails: list[bytes], rcpt: str, clients: int, count: int, listeners: list[subprocess.Popen[bytes]]
) -> dict[str, float]:
    """The STARTTLS variant: the listener's rate and CPU per mail with every session in
    TLS, and its CPU per handshake."""
    hz = os.sysconf("SC_CLK_TCK")

    def listener_cpu() -> float:
        ticks = cpu_ticks()
        return sum(tree_ticks(ticks, p.pid) for p in listeners) / hz

    before = listener_cpu()
    seconds, errors = blast(port, mails, rcpt, clients, tls=True)
    mail_cpu = listener_cpu() - before
    before = listener_cpu()
    shake_seconds = handshakes(port, count, clients)
    shake_cpu = listener_cpu() - before
    done = max(1, count // clients) * clients
    return {
        "rate": len(mails) / seconds,
        "cpu_ms": 1000 * mail_cpu / len(mails),
        "errors": errors,
        "handshake_ms": 1000 * shake_cpu / done,
        "handshakes_per_s": done / shake_seconds,
    }


def sink_rate(mails: list[bytes], rcpt: str, clients: int) -> tuple[float, float]:
    """A null aiosmtpd server in a child process (its own core time, like the listener).
    Returns (msg/s, CPU seconds the sink process used)."""
    port = free_port()
    code = (
        "import asyncio,sys\n"
        "from aiosmtpd.controller import Controller\n"
        "class Sink:\n"
        "    async def handle_DATA(self, server, session, envelope):\n"
        "        return '250 OK'\n"
        f"c=Controller(Sink(), hostname='127.0.0.1', port={port}); c.start()\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen([PYTHON, "-c", code], stdin=subprocess.PIPE)
    try:
        wait_port(port, [proc])
        before = tree_ticks(cpu_ticks(), proc.pid)
        seconds, errors = blast(port, mails, rcpt, clients)
        used = (tree_ticks(cpu_ticks(), proc.pid) - before) / os.sysconf("SC_CLK_TCK")
        assert errors == 0, errors
        return len(mails) / seconds, used
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)


def bench_workers(stack: dict[str, list[str]]) -> dict[str, list[str]]:
    """Of the processes of ``make run-stack`` (serve.py's ``stack_processes``), the Celery
    workers that the bench's mail uses: ``worker1..N`` (ingest) and ``content`` (at
    CONTENT_WORKER_NICE); quieter logs, no heartbeats. Not beat, send or webhooks: the
    bench queues nothing for them."""
    chosen = {name: command for name, command in stack.items() if name.startswith("worker") or name == "content"}
    for command in chosen.values():
        command[command.index("--loglevel") + 1] = "WARNING"
        command.append("--without-heartbeat")
    return chosen


def cpu_used(
    roots: dict[str, list[int]], before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[str, float]:
    """CPU seconds each part of the stack (its processes and their children) used between
    two ``cpu_ticks`` snapshots. Processes that ended between them are not counted (none should)."""
    hz = os.sysconf("SC_CLK_TCK")
    return {name: sum(tree_ticks(after, p) - tree_ticks(before, p) for p in pids) / hz for name, pids in roots.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--engine", default="postgres", choices=["postgres", "sqlite"])
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="ingest worker processes, besides the content worker (0: the listener alone, nothing is indexed)",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children per worker")
    parser.add_argument(
        "--listeners", type=int, default=1, help="SMTP listener processes sharing the port (run-stack: SMTP_LISTENERS)"
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--auth",
        default="authserv",
        choices=["authserv", "local"],
        help="trust the front MTA's Authentication-Results, or check SPF/DKIM locally (offline DNS)",
    )
    parser.add_argument(
        "--dns-latency-ms",
        type=float,
        default=0,
        help="with --auth local: each DNS lookup answers nothing after this delay (bench/_slow_dns.py)",
    )
    parser.add_argument("--starttls", action="store_true", help="then the same load with every session in TLS")
    parser.add_argument("--handshakes", type=int, default=1000, help="with --starttls: TLS sessions that send nothing")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    data_dir = temp_dir("bench-smtp-")
    pg_dir = temp_dir("bench-smtp-pg-") if args.engine == "postgres" else ""
    redis_dir = temp_dir("bench-smtp-redis-")
    procs: list[subprocess.Popen[bytes]] = []
    prefix: list[str] = []
    try:
        if pg_dir:
            base = os.environ.get("BENCH_DATABASE_URL") or pg_start(
                pg_dir, int(os.environ.get("BENCH_PG_PORT", "54338"))
            )
            database_url = fresh_pg_database(base, "bench_smtp")
        else:
            database_url = f"sqlite:///{data_dir}/db.sqlite3"
        redis_url = redis_start(redis_dir, int(os.environ.get("BENCH_REDIS_PORT", "63798")))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DATA_DIR": data_dir,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "DB_CONN_MAX_AGE": "60",
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "TOKEN_PEPPER": "bench-token-pepper-not-for-production",
            "DB_SYNCHRONOUS_COMMIT": "",
            "TRUST_DNS_RESOLVER": "mail.authn.dns_offline",
            # Every client connects from 127.0.0.1 (a trusted relay only with --auth authserv).
            "SMTP_MAX_SESSIONS_PER_IP": "0",
        }
        if args.starttls:
            from mail.smtp_tls import self_signed_ensure

            cert, key = self_signed_ensure(Path(data_dir) / "tls", "agents.localhost")
            env.update(SMTP_TLS_CERT=str(cert), SMTP_TLS_KEY=str(key))
        if args.auth == "authserv":
            env.update(AUTHSERV_ID="mx.agents.localhost", AUTHSERV_TRUSTED_RELAYS="127.0.0.1")
        elif args.dns_latency_ms:
            env.update(TRUST_DNS_RESOLVER="bench._slow_dns.resolve", BENCH_DNS_LATENCY_MS=str(args.dns_latency_ms))
        # As run-stack: workers need not wait for the WAL flush (the index is rebuilt from
        # the stored bytes); the listener's commit is the promise behind its 250.
        worker_env = {**env, "DB_SYNCHRONOUS_COMMIT": "off"}
        django_setup(database_url, data_dir, CELERY_BROKER_URL=redis_url)
        from assmbl.management.commands.serve import async_commit, stack_processes
        from directory.models import Account
        from directory.services import agent_create
        from mail.message_content import CONTENT_VERSION
        from mail.models import Message, MessageContent

        agent, _ = agent_create(agent_id="bench", account=Account.objects.create(name="bench"))

        def contents_of() -> int:
            """How many of the agent's messages have their content row (what a model reads)."""
            return int(MessageContent.objects.filter(message__agent=agent, version=CONTENT_VERSION).count())

        mails = [realistic_mail(i, agent.address, seed=7) for i in range(args.messages)]
        warm = [realistic_mail(i, agent.address, seed=8) for i in range(args.clients * 2)]

        disk_before = disk_cost(data_dir)
        sink, sink_cpu = sink_rate(mails, agent.address, args.clients)

        port = free_port()
        # BENCH_LISTENER_PREFIX wraps the listener, e.g. "py-spy record -o smtpd.svg --threads --".
        prefix = os.environ.get("BENCH_LISTENER_PREFIX", "").split()
        listen = [PYTHON, "manage.py", "smtpd", "--host", "127.0.0.1", "--port", str(port)]
        if args.listeners > 1:
            listen.append("--reuse-port")
        for n in range(args.listeners):
            procs.append(subprocess.Popen([*(prefix if n == 0 else []), *listen], cwd=ROOT, env=env))
        listeners = procs[: args.listeners]
        stack = stack_processes(
            http_port=0,
            smtp_port=port,
            web_workers=1,
            web_threads=1,
            celery_workers=args.workers,
            celery_concurrency=args.concurrency,
        )
        workers = bench_workers(stack) if args.workers else {}
        for name, command in workers.items():
            procs.append(subprocess.Popen(command, cwd=ROOT, env=worker_env if async_commit(name) else env))
        roles: dict[str, list[int]] = {"ingest workers": [], "content worker": []}
        for name, proc in zip(workers, procs[args.listeners :], strict=True):
            roles["content worker" if name == "content" else "ingest workers"].append(proc.pid)
        wait_port(port, procs)
        blast(port, warm, agent.address, args.clients)
        deadline = time.monotonic() + (60 if args.workers else 0)
        while contents_of() < len(warm) and time.monotonic() < deadline:
            time.sleep(0.1)
        base_count, base_contents = Message.objects.filter(agent=agent).count(), contents_of()

        roots = {
            "listener": [p.pid for p in listeners],
            **roles,
            "postgres": [pid for pid in [pidfile(Path(pg_dir) / "postmaster.pid")] if pid and pg_dir],
            "redis": [pid for pid in [pidfile(Path(redis_dir) / "redis.pid")] if pid],
        }
        before, own_before = cpu_ticks(), os.times()
        t0 = time.perf_counter()
        accept_seconds, errors = blast(port, mails, agent.address, args.clients)
        target = base_count + len(mails) - errors
        deadline = time.monotonic() + (args.timeout if args.workers else 0)
        while (count := Message.objects.filter(agent=agent).count()) < target and time.monotonic() < deadline:
            time.sleep(0.05)
        total = time.perf_counter() - t0
        indexed = count - base_count
        cpu = cpu_used(roots, before, cpu_ticks())
        own = os.times()
        cpu["bench clients"] = own.user + own.system - own_before.user - own_before.system
        # Content lags under a burst (its worker yields the CPU) and catches up after.
        content_target = base_contents + indexed
        while (contents := contents_of()) < content_target and time.monotonic() < deadline:
            time.sleep(0.1)
        content_total = time.perf_counter() - t0
        content_done = contents - base_contents
        cpu_content = cpu_used(roots, before, cpu_ticks())
        disk_after = disk_cost(data_dir)
        tls: dict[str, float] = {}
        if args.starttls:
            tls_mails = [realistic_mail(i, agent.address, seed=9) for i in range(args.messages)]
            tls = tls_phases(port, tls_mails, agent.address, args.clients, args.handshakes, listeners)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT if prefix and proc is procs[0] else signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis_stop(redis_dir)
        if pg_dir:
            pg_stop(pg_dir)
            cleanup(pg_dir)
        cleanup(redis_dir)
        cleanup(data_dir)

    # The sink again, the stack stopped. On a shared machine one run of it can be slowed by
    # a neighbour (its CPU per mail has ranged 0.44-0.66 ms), which would flatter the ratio:
    # the faster of the two runs is the baseline.
    sinks = [(sink, sink_cpu), sink_rate(mails, agent.address, args.clients)]
    sink, sink_cpu = max(sinks)
    rate = indexed / total
    print(
        f"engine={args.engine} clients={args.clients} messages={args.messages} bytes~{sum(map(len, mails)) // len(mails)} "
        f"celery={args.workers}x{args.concurrency} errors={errors}"
    )
    print(f"{disk_before} before the run; {disk_after.removeprefix('disk: ')} after it")
    print(
        f"sink (null aiosmtpd)       : {sink:8.0f} msg/s   cpu {1000 * sink_cpu / len(mails):.2f} ms/msg"
        f"   (the faster of {' and '.join(f'{r:.0f}' for r, _ in sinks)}, before and after the stack)"
    )
    print(
        f"listener 250s (accepted)   : {len(mails) / accept_seconds:8.0f} msg/s   cpu {1000 * cpu['listener'] / len(mails):.2f} ms/msg"
    )
    print(f"end to end (until indexed) : {rate:8.0f} msg/s   indexed {indexed}/{len(mails)}")
    print(
        f"content done               : {content_total - total:8.1f} s after the last mail was indexed"
        f"   ({content_done / content_total:.0f} msg/s until every content row; {content_done}/{indexed} rows)"
    )
    print(f"ratio listener / sink      : {len(mails) / accept_seconds / sink:8.3f}")
    print(f"ratio end-to-end / sink    : {rate / sink:8.3f}")
    print(
        f"processes: {args.listeners} listener(s), {args.workers} ingest workers x {args.concurrency} children and"
        f" the content worker x {args.concurrency} (as `make run-stack`), PostgreSQL ({args.engine}), Redis,"
        f" this script ({args.clients} client threads)"
    )
    print(
        "cpu seconds until indexed: "
        + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        + f"; wall {total:.1f} s on {os.cpu_count()} cpus"
    )
    print(
        "cpu seconds until content done: "
        + ", ".join(f"{k} {v:.1f}" for k, v in cpu_content.items())
        + f"; wall {content_total:.1f} s"
    )
    if tls:
        plain_ms = 1000 * cpu["listener"] / len(mails)
        print(
            f"listener 250s in STARTTLS  : {tls['rate']:8.0f} msg/s   cpu {tls['cpu_ms']:.2f} ms/msg"
            f"   ({tls['cpu_ms'] / plain_ms:.2f}x plain's cpu, {tls['rate'] / (len(mails) / accept_seconds):.2f}x its rate;"
            f" errors {tls['errors']:.0f})"
        )
        print(
            f"STARTTLS handshakes        : {tls['handshakes_per_s']:8.0f} /s      cpu {tls['handshake_ms']:.2f} ms each"
            " (connect, EHLO, STARTTLS, EHLO, QUIT)"
        )
    met = rate >= GOAL_RATE and rate / sink >= GOAL_RATIO
    print(f"goal: >= {GOAL_RATE:.0f} msg/s and >= {GOAL_RATIO:.0%} of the sink -> {'MET' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
