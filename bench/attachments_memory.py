"""Peak memory of attachment downloads and uploads with a 25 MB attachment.

Compares the two ways to serve a part of received mail:
  lazy    re-read the raw MIME, parse it, walk to part_index, decode the part (web process);
  stored  the part was stored at ingest: stream the file in chunks (web process);
and measures the costs around them:
  ingest  parse_mail + storing the parts (worker process, once per delivery);
  upload  the embedded upload endpoint's service streaming a 25 MB body to storage.

Each scenario runs in a fresh process, so ru_maxrss is that scenario's own peak.
Usage: python bench/attachments_memory.py [--mb 25]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from email import policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ["lazy", "stored", "ingest", "upload"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build_raw(size: int) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "bench@agents.localhost", "big"
    msg.set_content("See attached.")
    msg.add_attachment(os.urandom(size), maintype="application", subtype="octet-stream", filename="big.bin")
    return msg.as_bytes()


def child(scenario: str, raw_key: str, size: int) -> dict[str, float | str]:
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")
    django.setup()
    from django.http import FileResponse

    from mail.attachments import attachment_parts_store, part_key
    from mail.parsing import parse_mail, parse_message_object, walk_parts
    from mail.storage import mail_storage, raw_open

    raw_path = os.environ["BENCH_RAW_PATH"]
    base = rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    if scenario == "lazy":
        with raw_open(raw_key) as fh:
            parsed = parse_message_object(fh.read())
        parts = walk_parts(parsed)
        payload = parts[2][1].get_payload(decode=True)
        assert isinstance(payload, bytes) and len(payload) == size
        total = len(payload)
    elif scenario == "stored":
        key = open(raw_path + ".part").read()
        response = FileResponse(mail_storage().open(key, "rb"), as_attachment=True, filename="big.bin")
        total = sum(len(chunk) for chunk in response.streaming_content)
        assert total == size
    elif scenario == "ingest":
        with raw_open(raw_key) as fh:
            raw = fh.read()
        parsed_mail = parse_mail(raw)
        attachment_parts_store(parsed=parsed_mail)
        total = parsed_mail.attachments[0].size
        Path(raw_path + ".part").write_text(part_key(parsed_mail.attachments[0].sha256))
    elif scenario == "upload":
        from directory.models import Account
        from directory.services import agent_create
        from mail.attachments import attachment_create, attachment_upload_receive

        agent, _ = agent_create(agent_id=f"bench{int(time.time() * 1000)}", account=Account.objects.create(name="bench"))
        ticket = attachment_create(agent=agent, filename="big.bin", content_type="application/octet-stream", size=size)
        query = dict(pair.split("=", 1) for pair in ticket.url.split("?", 1)[1].split("&"))
        with open(raw_path + ".body", "rb") as body:  # stands in for the socket: read in chunks
            att = attachment_upload_receive(
                attachment_id=ticket.attachment.id,
                expires=query["expires"],
                signature=query["signature"],
                stream=body,
                content_length=size,
                content_type="application/octet-stream",
            )
        total = att.size
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "scenario": scenario,
        "bytes": total,
        "seconds": round(elapsed, 2),
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "rss_growth_mb": round(rss_mb() - base, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=25)
    parser.add_argument("--child", choices=SCENARIOS)
    parser.add_argument("--raw")
    args = parser.parse_args()
    size = args.mb * 1024 * 1024
    if args.child:
        print(json.dumps(child(args.child, args.raw, size)))
        return

    data_dir = tempfile.mkdtemp(prefix="assmbl-bench-")
    env = {**os.environ, "DATA_DIR": data_dir, "DEBUG": "1", "ASSMBL_TESTING": "0"}
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    raw = build_raw(size)
    sha = hashlib.sha256(raw).hexdigest()
    raw_dir = Path(data_dir) / "mail" / sha[:2]
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / f"{sha}.eml").write_bytes(raw)
    raw_path = str(raw_dir / f"{sha}.eml")
    with open(raw_path + ".body", "wb") as body:
        body.write(os.urandom(size))
    print(f"raw MIME: {len(raw) / 2**20:.1f} MiB with one {args.mb} MiB attachment")
    print(f"{'scenario':<8} {'seconds':>8} {'tracemalloc peak MiB':>21} {'RSS growth MiB':>15}")
    # ingest first: it stores the part that 'stored' streams.
    for scenario in ["ingest", "lazy", "stored", "upload"]:
        out = subprocess.run(
            [sys.executable, __file__, "--child", scenario, "--raw", f"{sha[:2]}/{sha}.eml", "--mb", str(args.mb)],
            env={**env, "BENCH_RAW_PATH": raw_path},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if out.returncode:
            print(out.stderr[-2000:])
            raise SystemExit(out.returncode)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{scenario:<8} {result['seconds']:>8} {result['tracemalloc_peak_mb']:>21} {result['rss_growth_mb']:>15}")


if __name__ == "__main__":
    main()
