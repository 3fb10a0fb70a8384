"""Worker processes that do not outlive their parent, however it ends.

A sweep's or a reproduction's workers train for hours while their parent collects what they
find. Killed outright (``kill -9``, the OOM killer, a scheduler's hard limit), the parent
cannot stop them, and an orphan would go on training runs whose results nobody collects,
holding cores and GPU memory. multiprocessing gives each process it spawns a sentinel of its
parent (a pipe whose other end only the parent holds; on Windows the parent's handle) that
becomes ready when the parent exits, by any means: one thread waiting on it needs no polling
and no platform-specific call (Linux's ``prctl``, for one, exists nowhere else).
"""

import threading
from multiprocessing import connection, parent_process


def on_parent_exit(act):
    """Call ``act()``, from a daemon thread, once this process's parent has exited, even
    killed outright. Meant for processes that multiprocessing started with the ``spawn``
    method, whose parent does not fork while they run: a forked copy of the parent holds its
    end of the pipe too, and the worker would wait for that copy as well. Returns whether
    there is such a parent to watch: ``False`` in a process that multiprocessing did not
    start, which is left as it is."""
    parent = parent_process()
    if parent is None or parent.sentinel is None:
        return False

    def watch():
        connection.wait([parent.sentinel])
        act()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return True
