"""Portable process management for a ROSACE night: one child process per module.

Plain ``subprocess`` (no fork, no POSIX signals), so it works on Windows too.
Starting the dome module also starts its guardian (``rosace dome guardian``) as a
child of the group, so that it outlives a killed dome module and still stops
with the run.
Every child writes its output to a log file in the run folder; ``stop_all``
terminates them and waits, killing any that does not stop, so nothing is left
running.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

GUARDIAN = "guardian"


def guardian_args(args: list[str]) -> list[str] | None:
    """The guardian's arguments for a ``... dome serve ...`` command line (None for any other)."""
    for i in range(len(args) - 1):
        if args[i] == "dome" and args[i + 1] == "serve":
            return [*args[:i], "dome", "guardian", *[a for a in args[i + 2:] if a != "--no-guardian"]]
    return None


def free_port() -> int:
    """Return a TCP port free on localhost right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: ``python -c`` program: sleep, then run ``rosace_core.cli`` with the remaining arguments.
_DELAYED = "import runpy, time; time.sleep({delay}); runpy.run_module('rosace_core.cli', run_name='__main__', alter_sys=True)"


@dataclass
class Child:
    """One child process of the run."""

    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    restarts: int = 0

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None


@dataclass
class ProcessGroup:
    """Start, watch, kill and restart the processes of one run."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, args: list[str], *, delay: float = 0.0) -> Child:
        """Start ``python -m rosace_core.cli <args>`` as child ``name``.

        ``delay`` > 0: the child waits that many seconds before it imports anything
        (a deliberately slow start-up, as on a loaded machine; used by the tests).
        """
        log_path = self.folder / "logs" / f"{name}.out"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        child = self.children.get(name) or Child(name, args, log_path)
        child.args = args
        # glibc gives each thread of a busy waitress server its own malloc arena;
        # two arenas keep a module's memory near its real use (no effect elsewhere).
        env = {"MALLOC_ARENA_MAX": "2", **os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        guarded = guardian_args(args) if name != GUARDIAN else None
        if guarded is not None:
            from rosace_dome.guardian import ENV_VAR

            env[ENV_VAR] = "external"  # the group runs the guardian (below), not the dome module
        flags = 0
        if sys.platform == "win32":
            flags = subprocess.CREATE_NEW_PROCESS_GROUP
        out = open(log_path, "ab")
        try:
            if delay > 0:
                command = [sys.executable, "-c", _DELAYED.format(delay=float(delay)), *args]
            else:
                command = [sys.executable, "-m", "rosace_core.cli", *args]
            child.popen = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(self.folder),
                creationflags=flags,
            )
        finally:
            out.close()
        self.children[name] = child
        log.info("started %s (pid %s): rosace %s", name, child.pid, " ".join(args))
        if guarded is not None and not (GUARDIAN in self.children and self.children[GUARDIAN].running):
            self.start(GUARDIAN, guarded)
        return child

    def kill(self, name: str) -> None:
        """Kill a child at once (a crash drill): no clean shutdown."""
        popen = self.children[name].popen
        if popen is not None and popen.poll() is None:
            popen.kill()
            popen.wait(timeout=10)

    def restart(self, name: str) -> Child:
        """Start a child again with the same arguments."""
        child = self.children[name]
        if child.running:
            self.kill(name)
        child.restarts += 1
        return self.start(name, child.args)

    def dead(self) -> list[str]:
        """Names of children that have exited."""
        return [n for n, c in self.children.items() if c.popen is not None and c.popen.poll() is not None]

    def stop_all(self, timeout: float = 10.0) -> None:
        """Terminate every child, then kill those still running after ``timeout`` s."""
        for child in self.children.values():
            if child.popen is not None and child.running:
                child.popen.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            if child.popen is None:
                continue
            try:
                child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait(timeout=5)

    def tail(self, name: str, lines: int = 20) -> str:
        """The last lines of a child's output (for error messages)."""
        path = self.children[name].log_path
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
