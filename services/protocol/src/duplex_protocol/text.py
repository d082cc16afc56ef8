"""Text that is safe to speak and to echo: pure helpers shared by every service.

A model gets text without control characters (a NUL makes Piper's C++
front end fail, others make espeak skip or stall); text that is not valid
Unicode (a lone surrogate from a JSON ``\\ud800`` escape) cannot be sent over
gRPC at all, so a service refuses it at its edge. Error messages echo client
input only through ``shown`` so that no reply grows with what was sent.
"""

from __future__ import annotations

import re
from typing import Final

MAX_ID_CHARS: Final = 128
"""Longest session, model or worker id accepted anywhere."""

# C0 and C1 controls except tab, newline and carriage return, plus DEL.
_CONTROLS = {c: " " for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(c) not in "\t\n\r"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with control characters as spaces and lone surrogates as U+FFFD."""
    return _SURROGATE.sub("\ufffd", text.translate(_CONTROLS))


def invalid_unicode(text: str) -> str | None:
    """Why ``text`` is not valid Unicode (it holds a lone surrogate), or None."""
    match = _SURROGATE.search(text)
    if match is None:
        return None
    return f"text holds a lone surrogate U+{ord(match.group()):04X} at index {match.start()}"


def shown(value: str, limit: int = 64) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for error messages."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"
