"""Runs the Kite Connect simulator until interrupted: point KITE_API_ROOT,
KITE_WS_ROOT and KITE_LOGIN_URL at it and log in with the demo account
(api_key ``kitesim_demo_key``, api_secret ``kitesim_demo_secret``)."""

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from brokers.kite_sim import DEMO_API_KEY, KiteSimulator

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the Kite Connect v3 simulator (REST, ticker WebSocket, fault injection) on loopback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8700, help="REST port (0 = any free port)")
        parser.add_argument("--ws-port", type=int, default=8701, help="ticker WebSocket port (0 = any free port)")
        parser.add_argument("--seed", type=int, default=7, help="seed of the price random walk")
        parser.add_argument("--tick-interval", type=float, default=1.0, help="seconds between tick frames")
        parser.add_argument(
            "--redirect-url",
            default=settings.KITE_REDIRECT_URL,
            help="where the login page sends its users back (default KITE_REDIRECT_URL, the app's /kite/callback/)",
        )
        parser.add_argument(
            "--no-limits",
            action="store_true",
            help="enforce none of Kite's limits (rates, caps, circuit, stop triggers); POST /_sim/limits sets them",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sim = KiteSimulator(
            options["host"],
            options["port"],
            options["ws_port"],
            seed=options["seed"],
            tick_interval=options["tick_interval"],
            redirect_url=options["redirect_url"],
            limits=not options["no_limits"],
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        sim.start()
        logger.info(
            "kite_sim ready",
            extra={"api_root": sim.api_root, "ws_root": sim.ws_root, "login_url": f"{sim.api_root}/connect/login"},
        )
        self.stdout.write(
            f"Kite simulator: KITE_API_ROOT={sim.api_root} KITE_WS_ROOT={sim.ws_root} "
            f"KITE_LOGIN_URL={sim.api_root}/connect/login (demo api_key {DEMO_API_KEY})"
        )
        try:
            stop.wait()
        finally:
            sim.stop()
