"""An LLM's markdown and emoji taken out of its streamed text before a voice reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from duplex_orchestrator.spoken import SpokenText, spoken


def said(*deltas: str) -> str:
    text = SpokenText()
    return "".join([text.push(delta) for delta in deltas]) + text.end()


ANSWER = """**Sure!** Here are some options:
1. *Margherita* — classic.
- Pepperoni 🍕
  * with _extra_ cheese
### Drinks
> Ask for the ~~old~~ new menu.

---
Check [the menu](https://example.com/m), ![a photo of it](https://x/p.png) or run `order --large`.
```bash
order --large
```
That's all 👍."""

SPOKEN = """Sure! Here are some options:
1. Margherita — classic.
Pepperoni.
with extra cheese.
Drinks.
Ask for the old new menu.


Check the menu, a photo of it or run order --large.

order --large.

That's all."""


def test_markdown_and_emoji_are_taken_out_and_lines_end_as_sentences() -> None:
    assert said(ANSWER) == SPOKEN


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_the_same_text_however_it_is_cut_into_deltas(size: int) -> None:
    deltas = [ANSWER[i : i + size] for i in range(0, len(ANSWER), size)]
    assert said(*deltas) == SPOKEN


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 3 * 4, or 12.",
        "Use snake_case names, and write to a_b@example.com.",
        "See note [1] below.",
        "It costs $5 - $7 per slice.",
        "-5 degrees tonight.",
    ],
)
def test_plain_text_is_left_as_it_is(text: str) -> None:
    assert said(text) == text
    assert said(*text) == text


def test_only_the_last_word_is_held_back() -> None:
    text = SpokenText()
    assert text.push("Hello") == ""
    assert text.push(" there, how") == "Hello there,"
    assert text.push(" are [the") == " how are"  # a link may be starting
    assert text.push(" docs](http://a/b) you?") == " the docs"
    assert text.end() == " you?"


def test_brackets_that_never_close_are_not_held_forever() -> None:
    text = SpokenText()
    out = text.push("[" + "word " * 70)
    assert out.startswith("[word word")


async def test_the_stream_is_closed_with_its_wrapper() -> None:
    closed: list[bool] = []

    async def deltas() -> AsyncIterator[str]:
        try:
            yield "**Hi"
            yield "** there"
            yield " 👋"
        finally:
            closed.append(True)

    assert "".join([d async for d in spoken(deltas())]) == "Hi there"
    stream = spoken(deltas())
    assert await anext(stream) == "Hi"
    await stream.aclose()
    assert closed == [True, True]


THOUGHT = (
    "<think>\nThe user wants **pizza**. Offer two.\n</think>\n\n"
    "Two kinds: *Margherita* or Pepperoni."
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(THOUGHT)])
def test_a_reasoning_models_thinking_is_not_said(size: int) -> None:
    deltas = [THOUGHT[i : i + size] for i in range(0, len(THOUGHT), size)]
    assert said(*deltas) == "Two kinds: Margherita or Pepperoni."


def test_a_thought_cut_off_says_nothing_and_a_lone_tag_like_text_is_kept() -> None:
    assert said("<think>Still thinking when the tokens ran out") == ""
    assert said("Use <b>bold</b> sparingly.") == "Use <b>bold</b> sparingly."
    assert said("A <thin", "g> in angle brackets.") == "A <thing> in angle brackets."
