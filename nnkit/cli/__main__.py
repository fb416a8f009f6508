"""`python -m nnkit.cli`: the same as the `nnkit` command."""

import sys

from nnkit.cli import main

sys.exit(main())
