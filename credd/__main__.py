"""`python -m credd`."""

import sys

from credd.cli import main

sys.exit(main())
