"""Shared helpers of the benchmarks: realistic mail, engines, Django setup, percentiles, and
the one way to start `manage.py serve` (bench/wake.py and tests/reliability/procs.py).

Each benchmark configures Django from the environment *before* importing it, so a script
that compares engines runs one child process per engine (``run_child``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WORDS = (
    "agent invoice meeting schedule report deploy pipeline review budget contract customer "
    "support ticket release staging verify account password reset quarterly forecast summary "
    "attached please kindly regards thanks tomorrow friday monday update status urgent"
).split()

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def realistic_mail(i: int, to: str, *, size: int = 5000, seed: int = 0) -> bytes:
    """About ``size`` bytes, shaped like real mail: a relay's trace headers, DKIM and
    authentication results, a text part and an HTML alternative."""
    rng = random.Random(seed * 1_000_003 + i)
    msg = EmailMessage()
    sender = f"{rng.choice(['alice', 'bob', 'carol', 'dave'])}{i % 97}@example.com"
    msg["Received"] = (
        f"from mx{i % 7}.example.com (mx.example.com [192.0.2.{i % 250}]) by mx.agents.localhost with ESMTPS id {i:x}"
    )
    msg["Received"] = "from client.example.com by mx.example.com with ESMTPSA; Tue, 24 Nov 2026 12:00:00 +0000"
    msg["DKIM-Signature"] = (
        "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1; h=from:to:subject:date; bh="
        + "A" * 44
        + "; b="
        + "B" * 340
    )
    msg["Authentication-Results"] = (
        "mx.agents.localhost; spf=pass smtp.mailfrom=example.com; dkim=pass header.d=example.com; dmarc=pass"
    )
    msg["From"] = f"{sender.split('@')[0].title()} Example <{sender}>"
    msg["To"] = to
    msg["Subject"] = f"{sentence(rng, 6)[:-1]} #{i}"
    msg["Date"] = format_datetime(
        __import__("datetime").datetime(2026, 11, 24, 12, 0, tzinfo=__import__("datetime").timezone.utc)
    )
    msg["Message-ID"] = make_msgid(idstring=f"bench{seed}.{i}", domain="example.com")
    msg["List-Unsubscribe"] = "<mailto:unsubscribe@example.com>"
    text_lines: list[str] = []
    while sum(len(line) + 1 for line in text_lines) < size * 0.33:
        text_lines.append(sentence(rng, 12))
    text = "\n".join(text_lines) + "\n"
    msg.set_content(text)
    html = "<html><body>" + "".join(f"<p>{line}</p>" for line in text_lines) + "</body></html>"
    msg.add_alternative(html, subtype="html")
    raw = msg.as_bytes()
    # Pad with a header to land on the requested size, like extra relay/ARC headers do.
    pad = max(0, size - len(raw) - 20)
    if pad:
        raw = b"X-Relay-Trace: " + (b"t" * min(pad, 900)) + b"\r\n" + raw
        extra = size - len(raw)
        while extra > 40:
            chunk = min(extra - 20, 900)
            raw = b"X-Arc-Seal: " + b"s" * chunk + b"\r\n" + raw
            extra = size - len(raw)
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def pg_start(folder: str, port: int, *, durable: bool = True) -> str:
    env = {**os.environ, "PG_DURABLE": "1" if durable else "0"}
    out = subprocess.run(
        [str(ROOT / "scripts" / "pg.sh"), "start", folder, str(port)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return out.stdout.strip()


def pg_stop(folder: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "pg.sh"), "stop", folder], check=False)


def redis_start(folder: str, port: int) -> str:
    out = subprocess.run(
        [str(ROOT / "scripts" / "redis.sh"), "start", folder, str(port)], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def redis_stop(folder: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "redis.sh"), "stop", folder], check=False)


def fresh_pg_database(base_url: str, name: str) -> str:
    """Drop and recreate a database on the cluster; returns its URL."""
    import psycopg

    admin = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + "/" + name


def django_setup(database_url: str, data_dir: str, **env: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="assmbl.settings",
        DATABASE_URL=database_url,
        DATA_DIR=data_dir,
        # DEBUG=0 as in production (DEBUG logs every query); the checks then want secrets.
        DEBUG="0",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-secret-key-not-for-production",
        TOKEN_PEPPER=os.environ.get("TOKEN_PEPPER") or "bench-token-pepper-not-for-production",
        LOG_LEVEL="WARNING",
        **env,
    )
    os.chdir(ROOT)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def temp_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


def cleanup(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def run_child(script: Path, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script --child args`` and return the JSON it prints on its last line."""
    out = subprocess.run(
        [PYTHON, str(script), "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{script.name} child printed no result:\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[-1])


def send_one(smtp_port: int, to: str, subject: str) -> float:
    """Send one short mail in its own SMTP session to the listener on 127.0.0.1; when its 250
    came (monotonic), the start of a wake-up time."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "bench@example.com", to, subject
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
        smtp.sendmail("bench@example.com", [to], msg.as_bytes())
        return time.monotonic()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def disk_cost(folder: str, files: int = 400) -> str:
    """What one stored object costs this disk right now: kernel CPU to create a 5 KB file,
    and the wall time of an fdatasync. Both swing between runs on the benchmark VM (file
    creation 0.02-0.6 ms), and raw MIME is one file per mail, so every run prints them."""
    probe = tempfile.mkdtemp(prefix="disk-probe-", dir=folder)
    payload = os.urandom(5 * 1024)
    try:
        before = os.times()
        for n in range(files):
            fd = os.open(os.path.join(probe, f"{n}.eml"), os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, payload)
            os.close(fd)
        after = os.times()
        fd = os.open(os.path.join(probe, "sync"), os.O_WRONLY | os.O_CREAT, 0o644)
        start = time.perf_counter()
        for _ in range(50):
            os.write(fd, payload)
            os.fdatasync(fd)
        synced = (time.perf_counter() - start) / 50
        os.close(fd)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    created = (after.system + after.user - before.system - before.user) / files
    return f"disk: file create {1000 * created:.3f} ms cpu, fdatasync {1000 * synced:.3f} ms"


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime in clock ticks) for every process."""
    out: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


def tree_ticks(snapshot: dict[int, tuple[int, int]], root: int) -> int:
    """CPU ticks of a process and its live descendants (prefork children, PG backends)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in snapshot.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += snapshot.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total


def pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def postgres_cpu_seconds(pidfile_path: str) -> float:
    """CPU seconds a PostgreSQL cluster has used: the postmaster and its live backends, plus
    the backends that have exited (reaped by the postmaster). 0.0 when it is not ours."""
    root = pidfile(Path(pidfile_path)) if pidfile_path else None
    if root is None:
        return 0.0
    try:
        fields = Path(f"/proc/{root}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    reaped = int(fields[13]) + int(fields[14])  # cutime + cstime
    return (tree_ticks(cpu_ticks(), root) + reaped) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = f" load {os.getloadavg()[0]:.2f}"
    except OSError:
        load = ""
    return f"{platform.node()} {cpus} cpu {model} python {platform.python_version()}{load}"


# --- manage.py serve ------------------------------------------------------------------------

# Not for a served service: the caller's own engines (the stack starts its own, the embedded
# mode keeps its database in DATA_DIR; manage.py run beside it must reach the same ones) and pytest's.
SERVE_ENV_DROPPED = ("PYTEST", "DATABASE_URL", "STACK_DATABASE_URL", "CELERY", "CACHE_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engines_installed() -> bool:
    """What `serve --stack` starts: Debian's PostgreSQL server and redis-server."""
    return bool(list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))) and shutil.which("redis-server") is not None


@dataclass
class Served:
    """`manage.py serve` in its own DATA_DIR: where it answers, and the environment in which
    `manage.py` reaches the same service (its dev.env holds the engines' URLs)."""

    base: str
    smtp_port: int
    env: dict[str, str]
    data_dir: Path


def serve_arguments(parser: argparse.ArgumentParser, *, offset: int) -> None:
    """--stack, --keep and the service's ports (BENCH_*_PORT, else 8100/2600/5440/6380 +
    ``offset``, so that two benchmarks' defaults never meet)."""
    parser.add_argument("--stack", action="store_true", help="as `make run-stack` (PostgreSQL + Redis)")
    for name, base in (("http", 8100), ("smtp", 2600), ("pg", 5440), ("redis", 6380)):
        default = int(os.environ.get(f"BENCH_{name.upper()}_PORT", str(base + offset)))
        parser.add_argument(f"--{name}-port", type=int, default=default)
    parser.add_argument("--keep", action="store_true", help="keep the DATA_DIR (serve.log)")


def serve_parsed(args: argparse.Namespace, **extra: str) -> contextlib.AbstractContextManager[Served]:
    """serve() with what serve_arguments() parsed."""
    ports = {f"{name}_port": getattr(args, f"{name}_port") for name in ("http", "smtp", "pg", "redis")}
    return serve(stack=args.stack, keep=args.keep, **ports, **extra)


def _serve_env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVE_ENV_DROPPED)}
    env.update(DATA_DIR=str(data_dir), DEBUG="1", LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="assmbl.settings")
    # No submission listener on its fixed port (a developer's shell may export it).
    env.update(SUBMISSION_PORT="0", **extra)
    return env


def _answering(base: str, proc: subprocess.Popen[Any], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{base}/v1/inbox", timeout=5)
            return
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"manage.py serve never answered:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.3)


def _serve_stop(proc: subprocess.Popen[Any], data_dir: Path, *, stack: bool) -> None:
    """As Ctrl-C stops it: the processes, then the engines (serve stops them itself, unless
    it was killed)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if stack:
        for script, folder in (("redis.sh", "redis"), ("pg.sh", "pg")):
            stop = [str(ROOT / "scripts" / script), "stop", str(data_dir / folder)]
            subprocess.run(stop, check=False, capture_output=True)


@contextlib.contextmanager
def serve(
    *,
    stack: bool,
    http_port: int = 0,
    smtp_port: int = 0,
    pg_port: int = 0,
    redis_port: int = 0,
    keep: bool = False,
    **extra: str,
) -> Iterator[Served]:
    """`manage.py serve` as `make run` starts it, or `make run-stack` (``stack``: its own
    PostgreSQL and Redis in DATA_DIR, migrated by serve), in a new DATA_DIR, on the ports
    given (0: a free one); ``extra``: environment variables of the service. Yields once the
    web server answers; stopped as Ctrl-C stops it, its DATA_DIR removed unless ``keep``
    (serve.log is in it)."""
    data_dir = Path(tempfile.mkdtemp(prefix="assmbl-serve-"))
    data_dir.chmod(0o755)  # as root, scripts/pg.sh runs the cluster as postgres, who must reach it
    env = _serve_env(data_dir, extra)
    http, smtp = http_port or free_port(), smtp_port or free_port()
    command = [PYTHON, "manage.py", "serve", "--http-port", str(http), "--smtp-port", str(smtp)]
    subprocess.run([PYTHON, "-m", "assmbl.devenv"], cwd=ROOT, env=env, check=True, capture_output=True)
    if stack:
        command += ["--stack", "--pg-port", str(pg_port or free_port()), "--redis-port", str(redis_port or free_port())]
    else:
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{http}"
        _answering(base, proc, log, timeout=240 if stack else 120)
        yield Served(base=base, smtp_port=smtp, env=env, data_dir=data_dir)
    finally:
        _serve_stop(proc, data_dir, stack=stack)
        if keep:
            print(f"DATA_DIR kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
