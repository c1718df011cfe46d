"""Ray start-up timeouts become one line naming the setting that raises the limit (no real timeout:
the exceptions are the ones Ray 2.60 raises, built or provoked without starting Ray)."""

from __future__ import annotations

import inspect
import mmap
from pathlib import Path

import pytest

from adabiobert.distributed.startup import EXIT_STARTUP_TIMEOUT, startup_timeout

RAYLET_TIMEOUT = ("The current node timed out during startup. This could happen because some of the raylet "
                  "failed to startup or the GCS has become overloaded.")  # ray/_private/node.py, a bare Exception


def gcs_port_timeout(tmp_path) -> RuntimeError:
    """The error Ray itself raises when the GCS never writes its port file (a 10 ms wait)."""
    from ray._raylet import GCS_SERVER_PORT_NAME, wait_for_persisted_port

    with pytest.raises(RuntimeError) as caught:
        wait_for_persisted_port(str(tmp_path), "ab" * 28, GCS_SERVER_PORT_NAME, timeout_ms=10)
    return caught.value


def joined(cause: BaseException) -> ConnectionError:
    """What ``ray.init(address=...)`` raises around a failure to connect (ray/_private/worker.py)."""
    try:
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379") from cause
    except ConnectionError as error:
        return error


def train_start_timeout() -> Exception:
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

    return ControllerError(WorkerGroupStartupTimeoutError(num_workers=2))


CASES = {
    "gcs port file": (gcs_port_timeout, "RAY_gcs_server_port_wait_time_s"),
    "gcs connect": (lambda tmp_path: joined(RuntimeError(
        "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n  File ...")),
        "RAY_gcs_server_port_wait_time_s"),
    "raylet registration": (lambda tmp_path: Exception(RAYLET_TIMEOUT), "RAY_raylet_start_wait_time_s"),
    "node to connect to": (lambda tmp_path: joined(RuntimeError(
        "No node info found matching attributes: '' when trying to resolve node to connect to.")),
        "RAY_gcs_server_request_timeout_seconds"),
    "train worker group": (lambda tmp_path: train_start_timeout(), "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_startup_timeout_is_one_line_naming_the_setting(case, tmp_path, monkeypatch):
    make, setting = CASES[case]
    monkeypatch.delenv(setting, raising=False)
    line = startup_timeout(make(tmp_path)).line()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("error: Ray did not start in time: ") and f"set {setting} higher" in line
    monkeypatch.setenv(setting, "240")
    assert "now 240" in startup_timeout(make(tmp_path)).line()


@pytest.mark.parametrize("error", [RuntimeError("boom"), ConnectionError("refused"), ValueError("Timed out")],
                         ids=["runtime", "connection", "value"])
def test_other_errors_are_not_startup_timeouts(error):
    assert startup_timeout(error) is None


def test_a_train_failure_that_is_not_a_startup_timeout_is_left_alone():
    from ray.train import ControllerError

    assert startup_timeout(ControllerError(ValueError("bad config"))) is None


def test_every_setting_and_message_is_in_the_installed_ray():
    import ray
    from ray._private import node, ray_constants, services
    from ray.train.v2._internal import constants as train_constants

    assert "RAY_gcs_server_port_wait_time_s" in inspect.getsource(node)
    assert "Failed to {'start' if self.head else 'connect to'} GCS" in inspect.getsource(node)
    assert "The current node timed out during startup. This " in inspect.getsource(node)
    assert "when trying to resolve node to connect to" in inspect.getsource(services)
    assert "RAY_gcs_server_request_timeout_seconds" in inspect.getsource(ray_constants)
    assert train_constants.WORKER_GROUP_START_TIMEOUT_S_ENV_VAR == "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
    raylet = Path(ray.__file__).parent / "_raylet.so"
    with raylet.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as binary:
        assert binary.find(b"RAY_raylet_start_wait_time_s") >= 0  # read by the C++ core, not Python


def test_the_train_job_says_so_in_one_line_when_ray_init_times_out(monkeypatch, capsys, corpora_root, tmp_path):
    import ray

    from jobs.train import main

    def init(*args, **kwargs):
        raise Exception(RAYLET_TIMEOUT)

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    status = main(["--data-root", str(corpora_root), "--max-train-sentences", "40", "--max-eval-sentences", "20",
                   "--output", str(tmp_path / "runs")])
    assert status == EXIT_STARTUP_TIMEOUT != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: Ray did not start in time: the node's raylet did not register")
    assert "RAY_raylet_start_wait_time_s" in line
    assert not (tmp_path / "runs").exists()  # nothing written
