"""Stopping child process groups: the one shutdown routine for servers, brokers and exporters.

Why: the product (embedded broker), the benchmarks and the tests all start helper processes in
their own session (`start_new_session=True`) so that a whole tree (gunicorn master and workers,
say) can be signalled at once; all must stop it the same way: SIGTERM the group, wait, then
SIGKILL whatever is left.
"""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Terminate `proc`'s process group; kill it if it has not exited after `timeout` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=timeout)
