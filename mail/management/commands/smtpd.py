from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from mail.smtp import smtp_controller
from mail.smtp_session import ListenerController
from mail.smtp_submission import submission_controller
from mail.smtp_tls import ServerTls


class Command(BaseCommand):
    help = "Run the local SMTP listener that feeds the ingestion pipeline (and the agents' submission port)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.SMTP_PORT)
        parser.add_argument(
            "--submission-port",
            type=int,
            default=settings.SUBMISSION_PORT,
            help="authenticated submission for agents on this port too (0: off)",
        )
        parser.add_argument(
            "--reuse-port",
            action="store_true",
            help="share the port with other listener processes (SO_REUSEPORT): one per core",
        )

    def handle(self, *args: Any, host: str, port: int, submission_port: int, reuse_port: bool, **options: Any) -> None:
        # One certificate for both ports; SIGHUP rereads it (a renewed certificate).
        tls = ServerTls()
        controllers: list[ListenerController] = [smtp_controller(host, port, reuse_port=reuse_port, tls=tls)]
        if submission_port:
            controllers.append(submission_controller(host, submission_port, reuse_port=reuse_port, tls=tls))
        for controller in controllers:
            controller.start()
        starttls = "with STARTTLS" if tls.context else "without STARTTLS (no SMTP_TLS_CERT)"
        self.stdout.write(f"SMTP listener on {host}:{port} for @{settings.MAIL_DOMAIN}, {starttls}")
        if submission_port:
            self.stdout.write(f"SMTP submission for agents on {host}:{submission_port}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: tls.reload())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for controller in reversed(controllers):
                controller.stop()
