"""``python -m sync`` entry point.

The cyclic garbage collector is off in this process: a CLI call is short, and nearly everything
it allocates is module state from its imports (~55k objects) that every gen-1/gen-2 pass scans
again for nothing, ~45 ms of a ~550 ms ``sync run``. Reference counting still frees every object
that is not in a cycle; ``worker`` (a loop that may run for long) turns the collector back on.
"""

import gc
import sys

gc.disable()  # before the imports: they are what the collector would keep re-scanning

from sync.cli import main  # noqa: E402

sys.exit(main())
