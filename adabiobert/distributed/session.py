"""Start or join Ray for a job, with Ray's own console output cut to what a user needs.

What each setting silences, and why it is safe (Ray 2.60, read from the installed package):

- ``address``: ``$RAY_ADDRESS`` when set (``ray job submit`` sets it for the driver), else
  ``"local"``. A bare ``ray.init()`` instead joins the cluster recorded in
  ``/tmp/ray/ray_current_cluster`` by an earlier ``ray start``, possibly long gone ("Found multiple
  active Ray instances ... Connecting to latest cluster", then "Could not read 'dashboard' from GCS").
- ``log_to_driver=False``: workers' stdout and stderr stay in the session's log files
  (``<session>/logs/worker-*``) instead of being copied here with a ``(pid=...)`` prefix. What a
  user must see comes through the driver: training progress is relayed from rank 0
  (``training._ProgressRelay``), and a worker's exception is raised here by Ray Train or Ray Data.
  ``ADABIOBERT_WORKER_LOGS=1`` copies them again, for debugging.
- ``logging_level=WARNING`` for the driver's ``ray`` logger (no "Started a local Ray instance"),
  and Ray Data's console handler at ERROR: its execution plans, its "Progress will be logged"
  status block every 10 s and warnings such as the autoscaling coordinator's timeouts stay in
  ``<session>/logs/ray-data/ray-data.log``. Ray Data's progress bars are off; the jobs draw their own
  (``adabiobert.progress``).
- A local instance keeps the token authentication Ray turns on by default for a new local
  cluster, without the warning that says so (its logger is set to ERROR). ``RAY_AUTH_MODE`` is
  not set here: after ``import ray`` the driver's auth setting is fixed, and a GCS started with
  a different one refuses it ("Missing authorization header"); set it before starting, if at all.
- A local instance's workers get ``RAY_API_SERVER_ADDRESS`` (its own dashboard, on a free port):
  Ray Train's placement-group cleaner asks the State API for its controller and otherwise looks
  for "the" cluster on this machine, which fails with a traceback when another Ray runs here.
"""

from __future__ import annotations

import logging
import os
import socket

import ray

FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
"""Settings (never credentials) that workers need: the same S3 endpoint and region as the driver."""


def worker_runtime_env() -> dict | None:
    """A Ray ``runtime_env`` that gives tasks and actors the driver's :data:`FORWARDED_ENV` values
    (``None`` when none is set)."""
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    return {"env_vars": env} if env else None


WORKER_LOGS_ENV = "ADABIOBERT_WORKER_LOGS"
"""Set to 1 to have the workers' stdout and stderr copied to the driver (Ray's ``log_to_driver``)."""


def init_ray(log=None) -> None:
    """Join ``$RAY_ADDRESS`` or start a local Ray, quietly (see the module docstring); a no-op when
    Ray is already initialised in this process.

    Args:
        log: called with one line saying which Ray this is and where its logs are (None: silent).
    """
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or "local"
    options = {
        "address": address,
        "configure_logging": True,
        "logging_level": logging.WARNING,
        "log_to_driver": os.environ.get(WORKER_LOGS_ENV, "") not in ("", "0"),
    }
    if address == "local":
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        port = _free_port()
        options.update(
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=port,
            runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}},
        )
    context = ray.init(**options)
    quiet_ray_data()
    if log is not None:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        where = "a local Ray" if address == "local" else f"the Ray cluster at {context.address_info.get('gcs_address') or address}"
        log(f"ray: {where}, {cpus} CPUs; its logs: {context.address_info.get('session_dir', '?')}/logs")


def quiet_ray_data() -> None:
    """Ray Data without its progress bars and with only errors on the console (its log file keeps all)."""
    from ray.data import DataContext
    from ray.data._internal.logging import SessionFileHandler

    DataContext.get_current().enable_progress_bars = False
    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, SessionFileHandler):
            handler.setLevel(logging.ERROR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
