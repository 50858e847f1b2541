"""Start a module's REST server as a child process (desktop local mode, self-test).

A child process isolates the window from a failing module: a crash, a hang or
a leaked thread in a module never takes the desktop down. Plain ``subprocess``
(no fork, no POSIX signals), so it behaves the same on Windows; in a frozen
bundle the child is the bundle's own ``rosace`` program.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def free_port() -> int:
    """Return a TCP port free on localhost right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Return True when nothing listens on ``127.0.0.1:port`` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def rosace_command(*args: str) -> list[str]:
    """Return the command line running ``rosace <args>`` with this installation.

    From source: ``python -m rosace_core.cli``. Frozen: the bundle's console
    program ``rosace(.exe)``, found next to the running executable (the desktop
    program ``rosace-desktop.exe`` cannot serve headless itself without a console).
    """
    if getattr(sys, "frozen", False):
        exe = Path(sys.executable)
        cli = exe.with_name("rosace.exe" if os.name == "nt" else "rosace")
        return [str(cli if cli.exists() else exe), *args]
    return [sys.executable, "-m", "rosace_core.cli", *args]


class ServerProcess:
    """One module server running as a child process, its output in a log file."""

    def __init__(self, module: str, port: int, log_path: Path, *, config_path: Path | str | None = None, host: str = "127.0.0.1"):
        self.module = module
        self.port = port
        self.host = host
        self.log_path = Path(log_path)
        self.config_path = config_path
        self.popen: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def command(self) -> list[str]:
        """The command line of the child."""
        args: list[str] = []
        if self.config_path:
            args += ["--config", str(self.config_path)]
        return rosace_command(*args, self.module, "serve", "--host", self.host, "--port", str(self.port))

    def start(self) -> "ServerProcess":
        """Start (or restart) the child; its output goes to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # No console window per child on Windows; its own process group so that a
        # Ctrl+C in the desktop's console is not delivered to every server at once.
        flags = 0
        if sys.platform == "win32":
            flags = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, creationflags=flags
            )
        log.info("started %s server (pid %s) on port %d", self.module, self.popen.pid, self.port)
        return self

    def restart(self) -> "ServerProcess":
        """Stop the child if it runs, then start it again on the same port."""
        self.stop()
        self.restarts += 1
        return self.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the child, killing it if it has not exited after ``timeout`` s."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)
        log.info("stopped %s server", self.module)

    def tail(self, lines: int = 8) -> str:
        """The last lines of the child's output (to explain a failure)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def stop_all(servers: list[ServerProcess], timeout: float = 5.0) -> None:
    """Stop several servers at once: terminate them all, then wait (and kill stragglers)."""
    import time

    running = [s.popen for s in servers if s.running and s.popen is not None]
    for popen in running:
        popen.terminate()
    deadline = time.monotonic() + timeout
    for popen in running:
        try:
            popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=5)
