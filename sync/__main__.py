"""``python -m sync`` entry point.

A CLI call is short, and most of what it allocates is module state from its imports (~55k
objects) that every collection would scan again for nothing (~45 ms of a ~550 ms ``sync run``).
So the collector runs rarely here and never re-scans what the imports left behind
(``gc.freeze``). The first-generation threshold is above what one sync allocates: a run on a 512 KB
definition leaves ~85k container objects (parse, byte forms, diff), nearly all freed by reference
counting, and scanning 50k of them once cost ~10 ms of a ~330 ms run; 200k covers a definition at
the platform's 1 MB limit. The collector still runs, so cyclic garbage of a long run over a big map
is reclaimed. ``worker`` (a loop that may run for hours) goes back to the default thresholds.
A command that returned ends without the interpreter's teardown (``sync/process_exit.py``).
"""

import gc

CLI_THRESHOLDS = (200_000, 20, 20)

gc.set_threshold(*CLI_THRESHOLDS)  # before the imports: they are what a collection would re-scan

from sync.cli import main  # noqa: E402
from sync.process_exit import finish  # noqa: E402

gc.freeze()  # import-time objects live as long as the process: out of every later collection
finish(main())
