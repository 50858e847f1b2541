"""Alpaca UDP discovery: answer ``alpacadiscovery1`` with ``{"AlpacaPort": N}``."""

from __future__ import annotations

import json
import logging
import socket
import threading

log = logging.getLogger(__name__)

DISCOVERY_MESSAGE = b"alpacadiscovery1"
DEFAULT_DISCOVERY_PORT = 32227


class DiscoveryResponder:
    """A daemon thread answering Alpaca discovery broadcasts on ``port`` (0: any free port)."""

    def __init__(self, alpaca_port: int, port: int = DEFAULT_DISCOVERY_PORT, host: str = ""):
        self.alpaca_port = alpaca_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="alpaca-discovery", daemon=True)

    def start(self) -> "DiscoveryResponder":
        self.thread.start()
        log.info("Alpaca discovery answering on UDP port %d", self.port)
        return self

    def _run(self) -> None:
        reply = json.dumps({"AlpacaPort": self.alpaca_port}).encode()
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(1024)
            except socket.timeout:
                continue
            except OSError:
                break
            if data.strip().lower().startswith(DISCOVERY_MESSAGE):
                try:
                    self.sock.sendto(reply, addr)
                except OSError as exc:  # an unreachable client must not stop the responder
                    log.debug("discovery reply to %s failed: %s", addr, exc)

    def stop(self) -> None:
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        if self.thread.is_alive():
            self.thread.join(timeout=2)
