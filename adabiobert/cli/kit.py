"""The argparse kit of the ``adabiobert`` command and of every job in ``jobs/``.

One parser class (``--version``; a usage error as one line and exit status 2), one way to refuse
(``refuse``), and the argparse types the entry points share. Nothing here imports torch or Ray:
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from adabiobert.training_config import TAG_PRECISIONS as PRECISIONS  # noqa: F401 (the jobs' --precision choices)

EXIT_USAGE = 2
"""Exit status of a refused command: a wrong argument, a missing input, an output in the way."""


def version_line() -> str:
    """What ``--version`` prints: ``adabiobert <version>``."""
    from adabiobert import __version__

    return f"adabiobert {__version__}"


def one_line(message: object) -> str:
    """``message`` with every run of white space (newlines included) made one space."""
    return " ".join(str(message).split())


class ArgumentParser(argparse.ArgumentParser):
    """The parser of the CLI and of every job: ``--version``, and a usage error as one line on
    stderr (``<prog>: error: <what> (see <prog> --help)``) with exit status 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=version_line())

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def refuse(error: BaseException | str) -> int:
    """Print ``error: <message>`` as one line on stderr; returns :data:`EXIT_USAGE`, or
    :data:`~adabiobert.output_lease.EXIT_OUTPUT_LEASED` (4) when another run holds the output
    (``OutputLeasedError``, also when this run's lease was taken over)."""
    from adabiobert.output_lease import EXIT_OUTPUT_LEASED, OutputLeasedError

    print(f"error: {one_line(error)}", file=sys.stderr)
    return EXIT_OUTPUT_LEASED if isinstance(error, OutputLeasedError) else EXIT_USAGE


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
