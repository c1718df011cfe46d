"""Print N TCP ports that are free on 127.0.0.1 right now, on one line (the README's Ray Jobs
block starts a head on them, so that it starts beside any other Ray on the machine).

    python scripts/free_ports.py 7
"""

from __future__ import annotations

import socket
import sys


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports the OS hands out as free (all held open until all are picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for held in sockets:
            held.bind(("127.0.0.1", 0))
        return [held.getsockname()[1] for held in sockets]
    finally:
        for held in sockets:
            held.close()


if __name__ == "__main__":
    print(*free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
