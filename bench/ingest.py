#!/usr/bin/env python
"""Ingestion pipeline throughput: bytes -> stored + indexed, on SQLite and PostgreSQL.

For N realistic ~5 KB mails: ``delivery_accept`` (store the bytes, commit the delivery,
publish the task) then ``delivery_process`` (parse, index, event), timed separately and
together, against a bare stdlib ``BytesParser(policy=compat32)`` parse of the same bytes
measured in the same process (the ratio is what to compare across noisy machines).

    python bench/ingest.py [--n 2000] [--engines sqlite,postgres] [--profile out.prof]
    python bench/ingest.py --layouts packs,files --rounds 3   # local raw layouts, alternating
    python bench/ingest.py --engines postgres --content off,on  # without / with the content task

``--content on``: each process also runs what the ``content`` queue's task does for every
batch it indexed (mail.message_content.message_contents_extract: the stored content and the
attachment conversions queued), on the same cores, as a content worker shares the machine.

PostgreSQL: a durable cluster (fsync on) from scripts/pg.sh in a temp folder on
BENCH_PG_PORT (default 54338), unless BENCH_DATABASE_URL points at one.
Goal: >= 1,500 msg/s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    cleanup,
    disk_cost,
    django_setup,
    fresh_pg_database,
    machine,
    pg_start,
    pg_stop,
    postgres_cpu_seconds,
    realistic_mail,
    run_child,
    temp_dir,
)

GOAL_PG = 1500.0


def _process(ids: list[str], *, content: bool) -> None:
    """Index a batch; with ``content``, then do the content task's work for it."""
    from mail.ingest import deliveries_process
    from mail.message_content import message_contents_extract
    from mail.models import Message

    deliveries_process(ids)
    if content:
        message_contents_extract(
            message_ids=list(Message.objects.filter(delivery_id__in=ids).values_list("id", flat=True))
        )


def child(args: argparse.Namespace) -> None:
    data_dir = temp_dir("bench-ingest-")
    database_url = args.database_url or f"sqlite:///{data_dir}/db.sqlite3"
    # The task is published on commit, as in production, to an in-memory broker: the
    # benchmark measures our pipeline, not a broker round-trip (bench/smtp.py does that).
    django_setup(database_url, data_dir, CELERY_BROKER_URL="memory://", CELERY_TASK_ALWAYS_EAGER="0")
    from django.conf import settings

    # docs/decisions/0010-pack-files.md: a pack per batch, or a file per mail.
    settings.MAIL_STORAGE_PACKS = args.layout == "packs"
    from email import policy
    from email.parser import BytesParser

    from directory.models import Account
    from directory.services import agent_create
    from mail.ingest import Arrival, deliveries_accept, delivery_accept, delivery_process
    from mail.models import InboundDelivery, Message

    account = Account.objects.create(name="bench")
    # Mail i goes to agent i % --agents: one mailbox, or a batch spread over many.
    agents = [agent_create(agent_id=f"bench{k}", account=account)[0] for k in range(args.agents)]
    to = [agents[i % len(agents)].address for i in range(args.n)]
    agent = agents[0]
    mails = [realistic_mail(i, to[i], seed=args.seed) for i in range(args.n)]
    warm = [realistic_mail(i, agent.address, seed=args.seed + 1) for i in range(50)]
    for raw in warm:  # imports, caches, prepared connections
        delivery_process(delivery_accept(raw=raw, source="smtp", envelope_recipients=[agent.address]).delivery.id)

    t0 = time.perf_counter()
    for raw in mails:
        BytesParser(policy=policy.compat32).parsebytes(raw)
    t_parse = time.perf_counter() - t0

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    ids: list[str] = []
    batch = args.batch
    pg_cluster = os.environ.get("BENCH_PG_PIDFILE", "")
    pg0 = postgres_cpu_seconds(pg_cluster)
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(mails), batch):
        arrivals = [Arrival(mails[i], "smtp", [to[i]]) for i in range(start, min(start + batch, len(mails)))]
        ids.extend(a.delivery.id for a in deliveries_accept(arrivals))
    t_accept, c_accept = time.perf_counter() - t0, time.process_time() - c0
    from django.db import connection

    if args.worker_async_commit and connection.vendor == "postgresql":
        # What DB_SYNCHRONOUS_COMMIT=off does in a Celery worker (run-stack sets it there).
        with connection.cursor() as cur:
            cur.execute("SET synchronous_commit TO off")
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(ids), batch):
        _process(ids[start : start + batch], content=args.content == "on")
    t_process, c_process = time.perf_counter() - t0, time.process_time() - c0
    pg_single = postgres_cpu_seconds(pg_cluster) - pg0
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)

    pg0 = postgres_cpu_seconds(pg_cluster)
    parallel_per_s, parallel_cpu = _parallel(args, to) if args.procs > 1 else (0.0, 0.0)
    time.sleep(0.5)  # the children's backends exit (and are reaped) once they have gone
    pg_parallel = postgres_cpu_seconds(pg_cluster) - pg0

    from django.test.utils import CaptureQueriesContext

    connection.queries_log.clear()  # a full log (9,000 entries) would capture nothing
    extra = realistic_mail(10**6, agent.address, seed=args.seed + 2)
    with CaptureQueriesContext(connection) as q_accept:
        did = delivery_accept(raw=extra, source="smtp", envelope_recipients=[agent.address]).delivery.id
    with CaptureQueriesContext(connection) as q_process:
        delivery_process(did)

    indexed = Message.objects.filter(agent__in=agents).count()
    assert indexed == args.n * (2 if args.procs > 1 else 1) + 51, indexed
    assert not InboundDelivery.objects.exclude(status="processed").exists()
    n = args.n
    print(
        json.dumps(
            {
                "batch": batch,
                "agents": args.agents,
                "content": args.content,
                "engine": f"{connection.vendor} {args.layout}"
                + (" +content" if args.content == "on" else "")
                + (" (worker async commit)" if args.worker_async_commit and connection.vendor == "postgresql" else ""),
                "n": n,
                "bytes": sum(map(len, mails)) // n,
                "parse_per_s": n / t_parse,
                "accept_per_s": n / t_accept,
                "process_per_s": n / t_process,
                "pipeline_per_s": n / (t_accept + t_process),
                # This process's own CPU (user + system): steadier than wall rates on a
                # shared machine, and it leaves out the database server's share.
                "accept_cpu_ms": 1000 * c_accept / n,
                "process_cpu_ms": 1000 * c_process / n,
                # The cluster's CPU, when the benchmark started it (0 otherwise).
                "pg_cpu_ms": 1000 * pg_single / n,
                "parallel_cpu_ms": 1000 * parallel_cpu / n,
                "parallel_pg_cpu_ms": 1000 * pg_parallel / n,
                "procs": args.procs,
                "parallel_per_s": parallel_per_s,
                "queries_accept": len(q_accept.captured_queries),
                "queries_process": len(q_process.captured_queries),
            }
        )
    )
    cleanup(data_dir)


def _parallel(args: argparse.Namespace, to: list[str]) -> tuple[float, float]:
    """The same pipeline in ``--procs`` forked processes at once (as Celery workers and the
    listener share the machine): each accepts a batch and processes it, on its own
    connection. Returns msg/s over the wall time of all of them, and the CPU seconds the
    forked processes used."""
    from django.db import connections

    from mail.ingest import Arrival, deliveries_accept

    mails = [(realistic_mail(i, to[i], seed=args.seed + 3), to[i]) for i in range(args.n)]
    shares = [mails[k :: args.procs] for k in range(args.procs)]
    connections.close_all()
    t0, before = time.perf_counter(), os.times()
    children = []
    for share in shares:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for start in range(0, len(share), args.batch):
                    accepted = deliveries_accept(
                        [Arrival(raw, "smtp", [address]) for raw, address in share[start : start + args.batch]]
                    )
                    _process([a.delivery.id for a in accepted], content=args.content == "on")
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        children.append(pid)
    failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
    elapsed, after = time.perf_counter() - t0, os.times()
    assert not failed, f"{len(failed)} bench processes failed"
    used = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    return args.n / elapsed, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--procs", type=int, default=2, help="also run the pipeline in this many processes at once (1 = skip)"
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="deliveries per accept and per process call (1 = one at a time)"
    )
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--agents", type=int, default=1, help="spread the mail over this many recipient agents")
    parser.add_argument("--profile", default="", help="cProfile output (.prof) of the timed pipeline, per engine")
    parser.add_argument(
        "--worker-async-commit",
        action="store_true",
        help="process phase with synchronous_commit=off (as run-stack workers)",
    )
    parser.add_argument(
        "--layouts", default="packs", help="local raw layouts to compare, alternating: packs,files (a file per mail)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat every engine and layout this many times")
    parser.add_argument(
        "--content", default="off", help="off, on, or off,on: without and/or with the content task's work (alternating)"
    )
    parser.add_argument("--layout", default="packs", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(f"machine: {machine()}")
    print(disk_cost(tempfile.gettempdir()))
    results = []
    runs = [
        (e, lay, c)
        for _ in range(args.rounds)
        for e in args.engines.split(",")
        for lay in args.layouts.split(",")
        for c in args.content.split(",")
    ]
    for engine, layout, content in runs:
        child_args = [
            "--content",
            content,
            "--layout",
            layout,
            "--n",
            str(args.n),
            "--seed",
            str(args.seed),
            "--batch",
            str(args.batch),
            "--procs",
            str(args.procs),
            "--agents",
            str(args.agents),
        ] + (["--worker-async-commit"] if args.worker_async_commit else [])
        if args.profile:
            child_args += ["--profile", f"{args.profile}.{engine}"]
        pg_dir = ""
        try:
            if engine == "postgres":
                base = os.environ.get("BENCH_DATABASE_URL")
                if not base:
                    pg_dir = temp_dir("bench-pg-")
                    base = pg_start(pg_dir, int(os.environ.get("BENCH_PG_PORT", "54338")), durable=True)
                child_args += ["--database-url", fresh_pg_database(base, "bench_ingest")]
            env = {"BENCH_PG_PIDFILE": str(Path(pg_dir) / "postmaster.pid")} if pg_dir else {}
            results.append(run_child(Path(__file__), child_args, env=env))
        finally:
            if pg_dir:
                pg_stop(pg_dir)
                cleanup(pg_dir)

    print(f"batch: {args.batch} deliveries per accept and per process call, to {args.agents} agent(s)")
    print(
        f"{'engine':<34} {'n':>6} {'bytes':>6} {'parse/s':>9} {'accept/s':>9} {'process/s':>10} {'pipeline/s':>11} "
        f"{'ratio':>6} {'procs':>5} {'parallel/s':>10} {'q/acc':>6} {'q/proc':>7} {'cpu acc':>8} {'cpu proc':>9}"
    )
    for r in results:
        ratio = r["pipeline_per_s"] / r["parse_per_s"]
        print(
            f"{r['engine']:<34} {r['n']:>6} {r['bytes']:>6} {r['parse_per_s']:>9.0f} {r['accept_per_s']:>9.0f} "
            f"{r['process_per_s']:>10.0f} {r['pipeline_per_s']:>11.0f} {ratio:>6.3f} {r['procs']:>5} "
            f"{r['parallel_per_s']:>10.0f} {r['queries_accept']:>6} {r['queries_process']:>7} "
            f"{r['accept_cpu_ms']:>8.3f} {r['process_cpu_ms']:>9.3f}"
        )
    for r in results:
        if r["engine"].startswith("postgresql") and r["pg_cpu_ms"]:
            line = (
                f"cpu per mail, {r['engine']}: accept {r['accept_cpu_ms']:.2f} + process {r['process_cpu_ms']:.2f} ms "
                f"+ PostgreSQL {r['pg_cpu_ms']:.2f} ms (one process)"
            )
            if r["parallel_per_s"]:
                line += (
                    f"; {r['procs']} processes {r['parallel_cpu_ms']:.2f} + PostgreSQL {r['parallel_pg_cpu_ms']:.2f} ms"
                    f" at {r['parallel_per_s']:.0f} msg/s"
                )
            print(line)
    for r in results:
        if r["engine"].startswith("postgresql"):
            best = max(r["pipeline_per_s"], r["parallel_per_s"])
            verdict = "MET" if best >= GOAL_PG else "NOT MET"
            print(f"goal: pipeline >= {GOAL_PG:.0f} msg/s on PostgreSQL: {best:.0f} msg/s -> {verdict}")
    print("ratio = pipeline msg/s (one process) / bare compat32 parse msg/s (same process, same mails)")
    print("parallel = accept + process in --procs processes at once, msg/s over their wall time")
    print("q/acc, q/proc = queries to accept and to process one more delivery alone (a batch of one)")
    print("cpu acc, cpu proc = this process's CPU (user + system) per mail in each phase, ms (no database server)")


if __name__ == "__main__":
    main()
