"""`python -m orchestrator` is the `fto` command."""

from orchestrator.cli import main

main()
