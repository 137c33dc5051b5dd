"""How a finished ``python -m sync`` command ends: without the interpreter's teardown.

A command that has done its work still pays for CPython's finalization: clearing every module a
sync loaded (azure-identity with MSAL and cryptography, azure-core, azure-data-tables, requests,
httpx) and freeing their objects one by one. That is ~55 ms of CPU on a ~380 ms ``sync run`` on
the bench machine (the same imports alone: 271 ms with the teardown, 216 without), for memory the
operating system takes back at once. So a command that returned ends this way instead: the
``atexit`` handlers run (logging flushes and closes its handlers there), the standard streams are
flushed, and ``os._exit`` ends the process with the command's exit code.

The ordinary exit stays wherever skipping the teardown could lose something:
- a non-daemon thread still running (the interpreter would wait for it to finish);
- a standard stream that cannot be flushed (a closed pipe: the ordinary exit reports it as Python
  always does);
- a trace or profile function installed (``coverage run``, ``python -m cProfile``, a debugger):
  such tools write their results after the command returns, in code that ``os._exit`` would skip.
An exception never comes here: it unwinds through the ordinary exit with its traceback. What is
not flushed: a file some code opened and never closed (teardown would close it); the package
opens none that way (every file is written under ``with``). Python 3.12's ``sys.monitoring``
tools are not seen by the trace check; the project runs on 3.11 (``requires-python``).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def _ordinary_exit_needed() -> bool:
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return True
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def finish(code: int) -> NoReturn:
    """End a command that returned ``code``, skipping the teardown when nothing can be lost."""
    if _ordinary_exit_needed():
        sys.exit(code)
    atexit._run_exitfuncs()  # what the ordinary exit runs first; it empties the registry
    try:
        # The process's own streams too, when code replaced sys.stdout/sys.stderr: what was
        # written to them before is still in their buffers, which only teardown would flush.
        streams = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        for stream in {id(s): s for s in streams if s is not None}.values():
            stream.flush()
    except Exception:  # a closed pipe or stream, or a replaced one that fails: report it normally
        sys.exit(code)
    os._exit(code)
