"""A turn answered too soon, joined to the words after it: the chat it is answered from
(``joined.take_back``), and the detector saying which turn went on (``take_joined``)."""

from __future__ import annotations

from livekit.agents import llm

from duplex_livekit.joined import take_back
from duplex_livekit.turns import LIKELY
from tests.support.livekit_turns import fake_detector, say, user_said


def _chat() -> llm.ChatContext:
    chat = user_said("What time is it?")
    chat.add_message(role="assistant", content="It is noon.")
    chat.add_message(role="user", content="I have a meeting.")
    chat.add_message(role="assistant", content="Good luck with your")  # cut short
    return chat


def _texts(chat: llm.ChatContext) -> list[tuple[str, str]]:
    return [(m.role, m.text_content or "") for m in chat.messages()]


def test_the_turn_answered_too_soon_and_its_cut_reply_are_taken_back() -> None:
    chat = _chat()
    assert take_back(chat, "i have  a meeting.") == "I have a meeting."
    assert _texts(chat) == [
        ("assistant", "Hello, how can I help?"),
        ("user", "What time is it?"),
        ("assistant", "It is noon."),
    ]


def test_a_turn_of_several_utterances_is_taken_back_by_its_last_words() -> None:
    chat = user_said("I would like to order a large pizza.")
    assert take_back(chat, "a large pizza.") == "I would like to order a large pizza."
    assert _texts(chat) == [("assistant", "Hello, how can I help?")]


def test_another_last_user_message_is_left_alone() -> None:
    chat = _chat()
    assert take_back(chat, "What time is it?") is None
    assert take_back(chat, "") is None
    assert take_back(llm.ChatContext(), "I have a meeting.") is None
    assert _texts(chat) == _texts(_chat())


async def test_the_detector_names_the_turn_a_false_end_went_on_from_once() -> None:
    """ "I have a meeting." ended at once; 0.6 s later, "With my manager at noon.": the
    turn answered too soon is named for the agent to join, once. An acknowledgement,
    or a turn well after, names none."""
    detector, clock = fake_detector()
    say(detector, clock, 1.0, "I have a meeting.", 0.97)
    assert await detector.predict_end_of_turn(user_said("I have a meeting.")) == LIKELY
    ended = detector.latest
    assert detector.take_joined() is None
    clock.now += 0.6
    say(detector, clock, 1.0, "With my manager at noon.", 0.97)
    assert detector.take_joined() is ended
    assert detector.take_joined() is None
    said = user_said("I have a meeting.", "With my manager at noon.")
    assert await detector.predict_end_of_turn(said) == LIKELY
    clock.now += 0.6
    say(detector, clock, 0.5, "Okay.", 0.99)
    assert detector.take_joined() is None
    clock.now += 3.0
    say(detector, clock, 1.0, "And tomorrow?", 0.99)
    assert detector.take_joined() is None
