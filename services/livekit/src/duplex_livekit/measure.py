"""What the judges measure of a turn's sound, beside Whisper's words (blocking).

The sound under the last word (Whisper's alignment), Smart Turn on the turn's
audio, and a statement's final pitch fall against the user's usual: each only
where the words leave the verdict open, as duplex's own sessions measure them.
``turns.DuplexTurnDetector`` calls it on Whisper's thread.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future

import numpy as np

from duplex_livekit.gap import answer
from duplex_livekit.verdicts import Measures
from duplex_orchestrator.asr import Transcript
from duplex_orchestrator.endpoint import EndOfTurn, is_statement
from duplex_orchestrator.prosody import PitchHabit, final_fall_st
from duplex_orchestrator.session_parts import TurnModel
from duplex_orchestrator.vad import VAD_RATE

log = logging.getLogger(__name__)


def measure(
    policy: EndOfTurn,
    transcript: Transcript,
    turn: np.ndarray,
    smart_turn: TurnModel | None,
    asked: Future[float] | None,
    pitch: PitchHabit,
) -> tuple[Measures, float | None]:
    """What the words leave open, measured: the sound under the last word (where they
    read complete), Smart Turn (where they read complete but for the doubt, or only
    lack their mark: its answer ``asked`` at the gap, or asked now), the statement's
    pitch against this user's usual; and that fall, to learn."""
    text, ends_here = transcript.text, transcript.ends_here
    complete = not policy.uses_transcript or policy.words_complete(text, ends_here)
    sound: float | None = None
    if transcript.aligner is not None:
        try:
            sound = transcript.aligned().last_word_sound_s
        except Exception:
            log.exception("alignment failed", extra={"event": "alignment_error"})
    probability: float | None = None
    if smart_turn is not None and (complete or policy.lacks_only_its_mark(text)):
        probability = answer(asked, "turn_model_error")
        if probability is None:
            probability = smart_turn.probability(turn)
    fall: float | None = None
    above: float | None = None
    if policy.pitch_rise_st > 0 and complete and is_statement(text):
        fall = final_fall_st(turn, VAD_RATE)
        above = pitch.above_usual_st(fall)
    return Measures(text, probability, ends_here, sound, above), fall
