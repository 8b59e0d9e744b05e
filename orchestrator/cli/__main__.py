"""`python -m orchestrator.cli`: the same as the `saga` console script."""

from __future__ import annotations

from orchestrator.cli import main

main()
