"""python -m tests.chaos: the chaos run (see tests/chaos/__init__.py)."""

from __future__ import annotations

import sys

from tests.chaos.harness import main

sys.exit(main())
