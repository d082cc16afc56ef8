"""Manual turns in a LiveKit room (push to talk): only the client's ``end_turn`` ends
one, nobody judges it, and the participant's ``duplex.turn_detection`` chooses them."""

from __future__ import annotations

import asyncio

import pytest

from duplex_livekit import Control, DuplexTurnDetector
from duplex_livekit.turns import LIKELY
from tests.support.livekit_turns import (
    POLICY,
    SILENCES,
    Clock,
    Model,
    Words,
    fake_detector,
    room_control,
    say,
    silence_of,
    user_said,
)


def _whisper_heard(
    detector: DuplexTurnDetector, clock: Clock, seconds: float, text: str
) -> list[int]:
    """The user says ``text`` for ``seconds``: how many samples Whisper heard."""
    words = Words([(text, 0.99)])
    detector.speech_started()
    clock.now += seconds
    detector.hear(silence_of(seconds), words, ended_at=clock.now)
    return words.heard


async def _still_waiting(asked: asyncio.Task[float]) -> bool:
    for _ in range(20):
        await asyncio.sleep(0)
    return not asked.done()


async def test_a_manual_turn_ends_only_at_the_clients_end_turn() -> None:
    """ "What time is it?" with Smart Turn sure: the judges would end the turn at its
    pause; with manual turns nobody judges it (Smart Turn is not asked), and only
    ``end_turn`` answers "likely", however long the silence."""
    model = Model(probability_of_complete=0.99)
    detector, clock = fake_detector(model)
    detector.set_manual(True)
    say(detector, clock, 1.0, "What time is it?", 0.99)
    asked = asyncio.create_task(detector.predict_end_of_turn(user_said("What time is it?")))
    clock.now += 60.0
    assert await _still_waiting(asked)
    assert model.heard == []
    assert detector.end_turn()
    assert await asyncio.wait_for(asked, timeout=5) == LIKELY
    assert not detector.end_turn()  # answered: nothing open to end


async def test_a_manual_turn_goes_on_across_any_pause_heard_whole() -> None:
    """Speech after a 5 s silence, the button still held, is the same turn: Whisper hears
    the turn so far, AgentSession is handed the new words. After the turn is answered,
    speech is a new turn, heard alone."""
    detector, clock = fake_detector()
    detector.set_manual(True)
    words = Words([("I would like to order.", 0.9), ("I would like to order a large pizza.", 0.9)])
    detector.speech_started()
    clock.now += 1.0
    detector.hear(silence_of(1.0), words, ended_at=clock.now)
    clock.now += 5.0
    detector.speech_started()
    clock.now += 1.0
    added = detector.hear(silence_of(1.0), words, ended_at=clock.now)
    assert words.heard == [16000, 32000]
    assert added.text == "a large pizza."
    said = "I would like to order. a large pizza."
    asked = asyncio.create_task(detector.predict_end_of_turn(user_said(said)))
    assert await _still_waiting(asked)
    detector.end_turn()
    assert await asyncio.wait_for(asked, timeout=5) == LIKELY
    assert _whisper_heard(detector, clock, 0.5, "Thanks.") == [8000]
    assert detector.latest is not None
    assert detector.latest.said == "Thanks."


async def test_manual_turns_need_no_judges_and_no_english() -> None:
    """A detector that does not judge (``--end-of-turn silence``, or German) passes
    automatic turns' utterances through, each heard alone, and AgentSession is not to ask
    it; with manual turns it hears them as one turn and is asked in any language."""
    clock = Clock()
    detector = DuplexTurnDetector(
        POLICY, SILENCES, None, language="de", judging=False, clock=clock, sleep=clock.sleep
    )
    assert not await detector.supports_language("de")
    words = Words([("Guten Tag.", None), ("Wie spät ist es?", None)])
    for seconds in (1.0, 0.5):
        detector.speech_started()
        clock.now += seconds
        detector.hear(silence_of(seconds), words, ended_at=clock.now)
    assert words.heard == [16000, 8000]
    assert detector.latest is None  # nothing judged
    detector.set_manual(True)
    assert await detector.supports_language("de")
    words = Words([("Ich möchte", None), ("Ich möchte eine Pizza.", None)])
    for _ in range(2):
        detector.speech_started()
        clock.now += 1.0
        detector.hear(silence_of(1.0), words, ended_at=clock.now)
        clock.now += 3.0
    assert words.heard == [16000, 32000]
    asked = asyncio.create_task(detector.predict_end_of_turn(user_said("Ich möchte eine Pizza.")))
    assert await _still_waiting(asked)
    assert detector.end_turn()
    assert await asyncio.wait_for(asked, timeout=5) == LIKELY


async def test_switching_back_to_automatic_turns_judges_again() -> None:
    """Words said under manual turns are a turn of their own when the participant switches
    back: answered then, not left waiting for an ``end_turn`` that will not come; the
    next utterance is judged alone, and a complete one ends at once."""
    detector, clock = fake_detector()
    detector.set_manual(True)
    say(detector, clock, 1.0, "I would like to order", 0.5)
    waiting = asyncio.create_task(detector.predict_end_of_turn(user_said("I would like to order")))
    assert await _still_waiting(waiting)
    detector.set_manual(False)
    assert await asyncio.wait_for(waiting, timeout=5) == LIKELY
    clock.now += 0.5
    say(detector, clock, 1.0, "What time is it?", 0.99)
    assert detector.latest is not None
    assert detector.latest.said == "What time is it?"
    said = user_said("What time is it?")
    assert await asyncio.wait_for(detector.predict_end_of_turn(said), timeout=5) == LIKELY


async def test_speech_after_a_turn_the_client_ended_is_a_new_turn() -> None:
    """Automatic turns: the client's ``end_turn`` answered a doubted turn before its
    silence ran out; speech after it, still within that silence, is a new turn (as
    AgentSession takes it), heard alone, not the answered one going on."""
    clock = Clock()

    async def never(seconds: float) -> None:  # only the client's end can end this wait
        await asyncio.Event().wait()

    doubting = Model(probability_of_complete=0.1)
    detector = DuplexTurnDetector(POLICY, SILENCES, doubting, clock=clock, sleep=never)
    say(detector, clock, 1.0, "I have a meeting.", 0.5)  # doubted: 0.7 s of silence
    assert detector.latest is not None
    assert detector.latest.wait_s == pytest.approx(0.7)
    asked = asyncio.create_task(detector.predict_end_of_turn(user_said("I have a meeting.")))
    assert await _still_waiting(asked)
    assert detector.end_turn()
    assert await asyncio.wait_for(asked, timeout=5) == LIKELY
    clock.now += 0.1
    assert _whisper_heard(detector, clock, 1.0, "What time is it?") == [16000]
    assert detector.latest is not None
    assert detector.latest.text == "What time is it?"


@pytest.mark.parametrize("settings", [{}, {"end_of_turn": "silence"}, {"asr_language": "de"}])
async def test_the_participants_attribute_chooses_manual_turns(settings: dict[str, str]) -> None:
    """``duplex.turn_detection``: "manual" hands the turns to the detector (where the
    VAD's silence ended them, AgentSession asks the detector from then on), "auto" or
    the attribute removed hands them back."""
    control, parts, sent = await room_control(**settings)
    turns, session = parts.turns, control._session
    assert turns is not None
    before = session.turn_detection
    await control.turn_detection("manual")
    assert turns.manual
    assert session.turn_detection is turns
    await control.turn_detection("")  # removed
    assert not turns.manual
    assert session.turn_detection == before
    await control.turn_detection("manual")
    await control.turn_detection("auto")
    assert not turns.manual
    assert sent == []


@pytest.mark.parametrize("settings", [{}, {"end_of_turn": "silence"}])
async def test_a_manual_turns_reply_is_prepared_only_once_the_client_ended_it(
    settings: dict[str, str],
) -> None:
    """AgentSession prepares a reply from each final transcript (its preemptive
    generation): for judged automatic turns, whose end may come at any pause; for a
    manual turn only once the client has ended it, not at each pause before."""
    control, parts, _ = await room_control(**settings)
    turns, options = parts.turns, control._session.options
    assert turns is not None
    turns.clock = clock = Clock()
    judged = turns.judging
    assert options.preemptive_generation["enabled"] is judged
    await control.turn_detection("manual")
    assert options.preemptive_generation["enabled"] is False
    turns.speech_started()
    assert options.preemptive_generation["enabled"] is False
    await control.handle(b'{"type": "end_turn"}')
    assert options.preemptive_generation["enabled"] is True  # its last words are coming
    clock.now += 3.0
    turns.speech_started()  # the next turn
    assert options.preemptive_generation["enabled"] is False
    await control.turn_detection("auto")
    assert options.preemptive_generation["enabled"] is judged


async def test_a_bad_turn_detection_gets_a_clear_error_and_changes_nothing() -> None:
    control, parts, sent = await room_control()
    await control.turn_detection("push-to-talk")
    assert parts.turns is not None
    assert not parts.turns.manual
    assert sent[0]["type"] == "error"
    assert sent[0]["code"] == "bad_message"
    assert "duplex.turn_detection" in str(sent[0]["message"])
    assert '"manual"' in str(sent[0]["message"])


async def test_without_a_detector_manual_turns_are_refused() -> None:
    control, _, sent = await room_control(end_of_turn="silence")
    bare = Control(control._session, control._voice, control._send)  # AgentSession's "vad"
    await bare.turn_detection("manual")
    await bare.turn_detection("auto")  # already so: nothing to say
    assert [event["code"] for event in sent] == ["unsupported"]
    assert control._session.turn_detection == "vad"
