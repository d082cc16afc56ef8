"""Turn-taking and barge-in decisions."""

import pytest

from duplex_orchestrator.turns import Action, State, Turns, has_words


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def speaking(clock: Clock) -> Turns:
    turns = Turns(clock)
    assert turns.utterance("What time is it?").actions == (Action.REPLY,)
    turns.reply_started()
    assert turns.state is State.SPEAKING
    return turns


def test_a_question_gets_a_reply_and_the_turn_returns_to_listening() -> None:
    turns = speaking(Clock())
    turns.reply_finished()
    assert turns.state is State.LISTENING


def test_noise_while_listening_is_ignored() -> None:
    turns = Turns(Clock())
    assert turns.speech_started().actions == ()
    assert turns.utterance("").actions == ()
    assert turns.utterance("[noise]").actions == ()
    assert turns.state is State.LISTENING


def test_barge_in_pauses_and_flushes_at_once() -> None:
    turns = speaking(Clock())
    decision = turns.speech_started()
    assert decision.actions == (Action.PAUSE_TTS, Action.FLUSH_CLIENT)
    assert turns.state is State.BARGED_IN
    assert turns.barge_ins == 1


def test_barge_in_with_words_stops_and_answers_the_new_utterance() -> None:
    clock = Clock()
    turns = speaking(clock)
    clock.now = 10.0
    turns.speech_started()
    clock.now = 10.7
    decision = turns.utterance("Wait, stop.")
    assert decision.actions == (Action.STOP_TTS, Action.REPLY)
    assert decision.text == "Wait, stop."
    assert decision.barge_in_ms == pytest.approx(700)
    assert turns.state is State.LISTENING
    turns.reply_started()
    assert turns.state.value == "speaking"


def test_barge_in_without_words_resumes_the_reply() -> None:
    turns = speaking(Clock())
    turns.speech_started()
    decision = turns.utterance("  (coughs) ")
    assert decision.actions == (Action.RESUME_TTS,)
    assert turns.state is State.SPEAKING


def test_reply_ending_during_a_barge_in_leaves_the_decision_to_the_utterance() -> None:
    turns = speaking(Clock())
    turns.speech_started()
    turns.reply_finished()
    assert turns.state is State.BARGED_IN
    assert turns.utterance("Wait.").actions == (Action.STOP_TTS, Action.REPLY)


@pytest.mark.parametrize("heard", ["", "Mm-hmm."])
def test_a_reply_that_ended_during_a_barge_in_is_not_resumed_into_speaking(heard: str) -> None:
    """Noise or an acknowledgement after the reply's last frame went out: nothing is
    left to speak, so the next speech is a turn, not a barge-in."""
    turns = speaking(Clock())
    turns.speech_started()
    turns.reply_finished()
    assert turns.utterance(heard).actions == (Action.RESUME_TTS,)
    assert turns.state is State.LISTENING
    assert turns.speech_started().actions == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("   ", False),
        ("[BLANK_AUDIO]", False),
        ("(music)", False),
        ("...", False),
        ("I", True),
        ("ok", True),
        ("Stop!", True),
        ("Hmm.", True),
        ("-", False),
        # A number said alone, as Whisper writes it (people's card names: "five five").
        ("5,5", True),
        ("4.", True),
        ("7", True),
        ("(2)", False),
    ],
)
def test_has_words(text: str, expected: bool) -> None:
    assert has_words(text) is expected
