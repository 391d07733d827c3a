"""``python -m afss.cli`` = the ``afss`` command."""

import sys

from afss.cli import main

sys.exit(main())
