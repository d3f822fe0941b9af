"""``python -m viewfinder.cli``."""

import sys

from viewfinder.cli import main

sys.exit(main())
