"""Ray start-up that timed out on a busy machine, told in one line that names the setting to raise.

The job entry points catch what ``ray.init`` (or Ray Train starting its workers) raised and, when it
is one of the start-up timeouts below, print :meth:`StartupTimeout.line` instead of a traceback and
exit with :data:`EXIT_STARTUP_TIMEOUT`. Each setting is an environment variable read by Ray when
the driver process starts; the names and messages were read from the installed Ray 2.60
(``ray/_private/node.py``, ``ray/_private/services.py``, ``ray/_private/ray_constants.py``, the
``_raylet`` extension, ``ray/train/v2/_internal/exceptions.py``), and
``tests/test_ray_startup.py`` checks that they are still there.

| Ray raises                                             | when                                  | setting                                 |
|--------------------------------------------------------|---------------------------------------|-----------------------------------------|
| ``RuntimeError: Timed out waiting for file .../gcs_server_port_<node id>`` | a local start: the GCS did not come up | ``RAY_gcs_server_port_wait_time_s`` |
| ``RuntimeError: Failed to start GCS`` / ``Failed to connect to GCS`` (as the cause of ``ConnectionError: Failed to connect to Ray cluster at ...`` when joining) | the GCS did not answer | ``RAY_gcs_server_port_wait_time_s`` |
| ``Exception: The current node timed out during startup`` | the raylet did not register with the GCS | ``RAY_raylet_start_wait_time_s`` |
| ``RuntimeError: ... when trying to resolve node to connect to`` | joining: no raylet of this host registered | ``RAY_gcs_server_request_timeout_seconds`` |
| ``ray.train.ControllerError`` caused by ``WorkerGroupStartupTimeoutError`` | Ray Train's workers did not start | ``RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S`` |

Ray Train retries a worker group that did not start without limit by default
(``FailureConfig.controller_failure_limit=-1``), so the last row only surfaces when a limit is set.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

EXIT_STARTUP_TIMEOUT = 75
"""Exit status of a job whose Ray did not start in time (``EX_TEMPFAIL`` of sysexits.h: a later
try, or a larger limit, may succeed)."""


@dataclass(frozen=True)
class StartupTimeout:
    """One start-up timeout: what did not start, and the setting that gives it longer."""

    what: str
    setting: str
    """The environment variable Ray reads for this limit."""
    unit: str
    default: str
    ray_message: str
    """The first line of Ray's own message."""

    def line(self) -> str:
        """One line for stderr: what timed out, the setting (and its value now), Ray's words."""
        now = os.environ.get(self.setting)
        value = f"now {now}" if now is not None else f"default {self.default}"
        return (f"error: Ray did not start in time: {self.what}; set {self.setting} higher ({self.unit}, {value}) "
                f"or run when the machine is less busy [Ray: {self.ray_message}]")


# (substring of Ray's message, what, setting, unit, default), first match wins
_MESSAGES = (
    ("Timed out waiting for file", "its GCS server did not come up",
     "RAY_gcs_server_port_wait_time_s", "seconds", "30, or 120 with the RocksDB store"),
    ("Failed to start GCS", "its GCS server did not answer",
     "RAY_gcs_server_port_wait_time_s", "connection attempts about a second apart", "20"),
    ("Failed to connect to GCS", "the cluster's GCS server did not answer",
     "RAY_gcs_server_port_wait_time_s", "connection attempts about a second apart", "20"),
    ("The current node timed out during startup", "the node's raylet did not register with the GCS",
     "RAY_raylet_start_wait_time_s", "seconds", "ray.init waits about 30 s in all"),
    ("when trying to resolve node to connect to", "no Ray node on this machine registered with the cluster",
     "RAY_gcs_server_request_timeout_seconds", "seconds", "60"),
)
_TRAIN_START = ("WorkerGroupStartupTimeoutError", "Ray Train's worker group did not start",
                "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "seconds per attempt", "60")


def startup_timeout(error: BaseException) -> StartupTimeout | None:
    """The start-up timeout behind ``error`` (itself, its causes, or the failure a Ray Train
    ``ControllerError`` wraps), or None when it is something else.

    Matching is on Ray's messages and class names, so that this module needs no import of Ray
    (nor of Ray Train, for jobs that do not use it).
    """
    for cause in _chain(error):
        names = {cls.__name__ for cls in type(cause).__mro__}
        said = _first_line(cause) if cause is error else f"{_first_line(error)}: {_first_line(cause)}"
        if _TRAIN_START[0] in names:
            return StartupTimeout(*_TRAIN_START[1:], said)
        for text, what, setting, unit, default in _MESSAGES:
            if text in str(cause):
                return StartupTimeout(what, setting, unit, default, said)
    return None


def report_startup_timeout(error: BaseException) -> int:
    """For a job's ``except Exception``: print the one line for a Ray start-up timeout and return
    ``EXIT_STARTUP_TIMEOUT``; any other error is raised again unchanged."""
    timeout = startup_timeout(error)
    if timeout is None:
        raise error
    print(timeout.line(), file=sys.stderr)
    return EXIT_STARTUP_TIMEOUT


def _first_line(error: BaseException) -> str:
    """The first line of an error's message, without a traceback pasted into it, at most 200 characters."""
    return (str(error).strip().splitlines() or [""])[0].split(" Traceback")[0].rstrip(":")[:200]


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and everything it wraps, each once, outermost first."""
    found, todo = [], [error]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [getattr(current, "controller_failure", None), current.__cause__, current.__context__]
    return found
