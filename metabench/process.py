"""Whether a process id names a live process (torch-free: `runs rm` and `--resume` both ask)."""

from __future__ import annotations

import os


def process_alive(pid: object) -> bool:
    """True when process `pid` exists, even one owned by another user; False for anything else.

    Only positive ids name one process: os.kill(0 or -n, 0) would probe a whole process group.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, OSError):
        return False
    return True
