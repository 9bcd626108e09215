"""``python -m replication.cli``: the ``regiondb`` command, as ``python -m replication``."""

import sys

from . import main

sys.exit(main())
