"""``python -m duplex_operator``: the same as ``duplex-operator``."""

from duplex_operator.cli import main

main()
