"""``python -m viewfinder``."""

import sys

from viewfinder.cli import main

sys.exit(main())
