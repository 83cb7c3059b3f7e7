"""``python -m factory.cli``: the same as the `factory` command."""

import sys

from factory.cli.main import main

sys.exit(main())
