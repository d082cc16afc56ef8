"""``python -m duplex_orchestrator`` is ``duplex-orchestrator``."""

from duplex_orchestrator.cli import orchestrator_main

orchestrator_main()
