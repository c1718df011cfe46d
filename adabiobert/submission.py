"""Paths given to a job submitted with ``ray job submit``: absolute or ``s3://``, never relative.

A Ray Job's entry point runs on the head, in the job's working directory: with ``--working-dir .``
a copy of the checkout unpacked under ``/tmp/ray/session_*/runtime_resources/``, without it
whatever folder the job supervisor runs in. A relative ``--output`` is written there, so the job
reports success while its files are where nobody looks (and go with the session). The job cannot
know the folder ``ray job submit`` was run from, so the jobs refuse a relative local path when they
run as a Ray Job, before any work, naming the flag and what to pass instead (the submitting
shell expands ``"$PWD/runs"``). Run directly (``python jobs/train.py``) a relative path means
what it always does.

How a Ray Job is recognised (Ray 2.60, ``dashboard/modules/job/job_supervisor.py``): the
supervisor starts the entry point with ``RAY_JOB_CONFIG_JSON_ENV_VAR`` set to a JSON object whose
``metadata.job_submission_id`` is the submission id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from adabiobert.errors import ConfigError

JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by Ray's job supervisor for the entry point of a submitted job."""


def ray_job_submission_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The submission id when this process is a Ray Job's entry point, else None.

    A variable that is set but not as Ray writes it still means a Ray Job (its id is then ``?``).
    """
    raw = (os.environ if environ is None else environ).get(JOB_CONFIG_ENV)
    if not raw:
        return None
    try:
        metadata = json.loads(raw).get("metadata") or {}
        return str(metadata.get("job_submission_id") or "?")
    except (ValueError, AttributeError):
        return "?"


def is_relative_local(path: str) -> bool:
    """True for a local path that is relative (``runs``, ``./runs``, ``../shared``); False for an
    absolute one, ``~/...`` (the home folder of whoever runs the job) and any ``scheme://`` URI."""
    if "://" in path:
        return False
    return not Path(path).expanduser().is_absolute()


def check_job_paths(paths: Mapping[str, str | Iterable[str] | None], environ: Mapping[str, str] | None = None) -> None:
    """Refuse relative local paths when running as a Ray Job; do nothing otherwise.

    Args:
        paths: flag (as the user wrote it, e.g. ``--output``) -> its value, a list of values (a
            repeatable flag, positional inputs) or None (not given).
        environ: the environment to look in (default: this process's).

    Raises:
        ConfigError: naming the first relative path, why it is refused and what to pass instead.
    """
    submission_id = ray_job_submission_id(environ)
    if submission_id is None:
        return
    for flag, values in paths.items():
        for value in [values] if isinstance(values, str) else (values or ()):
            if value and is_relative_local(value):
                shown = value.removeprefix("./")
                raise ConfigError(
                    f"{flag} {value}: a relative path in Ray Job {submission_id} resolves in the job's working "
                    f"directory on the cluster ({os.getcwd()}), not in the folder you ran `ray job submit` from; "
                    f"pass an absolute path (e.g. {flag} \"$PWD/{shown}\", expanded by your shell) or an s3:// URI")
