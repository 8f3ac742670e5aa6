"""``python -m genrefine ...`` (and ``torchrun ... -m genrefine ...``): the command line."""

import sys

from genrefine.cli import main

sys.exit(main())
