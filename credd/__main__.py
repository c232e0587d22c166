"""`python -m credd`."""

import sys

from credd.entry import main

sys.exit(main())
