"""``python -m duplex_tts`` is ``duplex-tts-worker``."""

from duplex_tts.cli import main

main()
