"""``python -m regiondb.cli``: the ``regiondb`` command, as ``python -m regiondb``."""

import sys

from . import main

sys.exit(main())
