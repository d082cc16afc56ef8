"""One line for a person to act on, from every problem a settings model found.

pydantic lists each invalid field; a service that showed only the first made a
person fix a config file one error per start. The value given is shown, except
for a field that holds a secret (an API key, a credential), which is never
echoed to a terminal or a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_SECRET = re.compile(r"key|secret|credential|token|password", re.IGNORECASE)
_SHOWN_CHARS = 80


def describe(
    errors: Sequence[Mapping[str, Any]], root: str = "config", show_input: bool = True
) -> str:
    """``field: message (got value); …`` for pydantic's ``ValidationError.errors()``;
    ``root`` names a problem of the whole (no field). ``show_input=False``: no value
    at all (files whose fields may carry a URL's token, logged as they are)."""
    parts = []
    for err in errors:
        field = ".".join(str(p) for p in err["loc"]) or root
        message = str(err["msg"]).removeprefix("Value error, ")
        given = err.get("input")
        shown = (
            show_input
            and "input" in err
            and not isinstance(given, dict)
            and not _SECRET.search(field)
        )
        parts.append(f"{field}: {message}" + (f" (got {_short(given)})" if shown else ""))
    return "; ".join(parts)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


__all__ = ["describe"]
