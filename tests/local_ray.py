"""Start and stop a private Ray head (and extra nodes) on loopback for tests that need a real
cluster: the Ray Jobs tests and the fault tests.

Everything here is scoped to one temp dir and to ports picked free, because other Ray instances
may run on the same machine (the suite's own session, other people's work): `ray stop` would kill
them all, so stopping is done by process id, for the processes whose command line or working
directory lies under this head's temp dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RAY_CLI = str(VENV_BIN / "ray")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_temp_dir(prefix: str) -> Path:
    """A temp dir with a short path: Ray's Unix sockets live under it (107-byte limit)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def ray_env(auth_mode: str = "disabled", **extra: str) -> dict[str, str]:
    """The environment for `ray` commands: the venv first on PATH, so that a job's `python` is
    the venv's (the entrypoint's interpreter is looked up on the PATH the head started with), as
    `source .venv/bin/activate` does in the README.

    ``auth_mode``: Ray 2.60 turns token auth on for a head when ~/.ray/auth_token exists (any
    local ray.init writes one), and its CLI sends the token only with ``RAY_AUTH_MODE=token``; both
    sides get the same setting here. ``token`` is what the README's Ray Jobs block uses.
    """
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env.setdefault("RAY_memory_monitor_refresh_ms", "0")  # container cgroup accounting misfires
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env["RAY_AUTH_MODE"] = auth_mode
    env.update(extra)
    return env


def processes_under(folder: Path) -> list[int]:
    """Ids of this user's processes whose command line or working directory is under ``folder``."""
    needle = str(folder)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(int(entry.name))
    return found


def kill_processes_under(folder: Path, timeout_s: float = 30) -> None:
    """SIGKILL every process that belongs to the Ray instance under ``folder`` and wait for them."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = processes_under(folder)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes under {folder} survived SIGKILL: {pids}")
        time.sleep(0.2)  # let the kernel reap them before looking again


PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
              "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")
"""Every port a head listens on that has a fixed default (6379, 8265, 10001, 52365) or could
collide: each is given a free one, as the README's Ray Jobs block does."""


@dataclass
class LocalHead:
    """A Ray head started with `ray start --head` on loopback, with the dashboard (Ray Jobs)."""

    num_cpus: int = 6
    auth_mode: str = "disabled"
    """``RAY_AUTH_MODE`` of the head (and of the ``ray`` commands run against it: :meth:`env`)."""
    temp_dir: Path = field(default_factory=lambda: short_temp_dir("rh"))
    port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for ``ray`` commands against this head (they name it: no ``RAY_ADDRESS``)."""
        env = ray_env(self.auth_mode, **extra)
        env.pop("RAY_ADDRESS", None)
        return env

    def start(self) -> "LocalHead":
        ports = {flag: free_port() for flag in PORT_FLAGS}
        ports.update({"--port": self.port, "--dashboard-port": self.dashboard_port})
        command = [
            RAY_CLI, "start", "--head", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
            "--include-dashboard=true", f"--num-cpus={self.num_cpus}", f"--temp-dir={self.temp_dir}",
            "--object-store-memory=500000000", "--disable-usage-stats",
            *(f"{flag}={port}" for flag, port in ports.items()),
        ]
        if self.auth_mode == "token":  # as the README: make ~/.ray/auth_token if there is none
            subprocess.run([RAY_CLI, "get-auth-token", "--generate"], env=self.env(), capture_output=True, timeout=120,
                           check=True)
        done = subprocess.run(command, env=self.env(), cwd=REPO, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return self

    def stop(self) -> None:
        kill_processes_under(self.temp_dir)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
