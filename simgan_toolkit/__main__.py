"""``python -m simgan_toolkit``: the ``simgan`` command."""

import sys

from simgan_toolkit.cli import main

sys.exit(main())
