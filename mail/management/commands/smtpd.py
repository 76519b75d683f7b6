from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from mail.smtp import smtp_controller


class Command(BaseCommand):
    help = "Run the local SMTP listener that feeds the ingestion pipeline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.SMTP_PORT)
        parser.add_argument(
            "--reuse-port",
            action="store_true",
            help="share the port with other listener processes (SO_REUSEPORT): one per core",
        )

    def handle(self, *args: Any, host: str, port: int, reuse_port: bool, **options: Any) -> None:
        controller = smtp_controller(host, port, reuse_port=reuse_port)
        controller.start()
        self.stdout.write(f"SMTP listener on {host}:{port} for @{settings.MAIL_DOMAIN}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
