"""``python -m replication``: the ``regiondb`` command (see :mod:`replication.cli`)."""

import sys

from .cli import main

sys.exit(main())
