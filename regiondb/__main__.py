"""``python -m regiondb``: the ``regiondb`` command (see :mod:`regiondb.cli`)."""

import sys

from .cli import main

sys.exit(main())
