"""`python -m fto.orchestrator` is the `fto` command."""

from fto.orchestrator.cli import main

main()
