"""End of turn: is the user done, or only pausing? Pure decisions, no I/O.

Silence alone cuts people off at a hesitation ("I'd like to order … a large
pizza") and makes complete answers wait. At a short pause (the VAD's
``SPEECH_PAUSE``, ``--end-of-turn-pause-ms``) the session asks two judges and
ends the turn at once when they agree it is complete; otherwise it waits for
more speech, up to the silence that ends any turn (``--vad-end-ms``):

- the transcript so far (Whisper's punctuation and last words): the rules of
  English in ``turn_words`` (``transcript_complete``: no final punctuation, a
  statement ending on "to" or "the", "I would like to order.", "Could you
  remind me?", "What time does the museum?", ...), not a model:
  ``tests.bench.bench_end_of_turn`` measures how they carry over to phrases
  they were not written for.
  Whisper ends whatever it hears with a full stop or a question mark, and
  Smart Turn judged those last two complete (0.82 and 0.97) on Piper's
  voice, so the words must; a complete turn they hold back waits for the
  full silence instead, which costs time, not the user's words;
  Beside a question's words, Whisper's own doubt: its probability that the
  sentence ends at the "?" it wrote (``asr.Transcript.ends_here``). Its
  language model still expects words after "What's the difference between" or
  "Is it possible to change" when the audio stops there, and the voice of a
  sentence going on tells it so too; below ``question_end`` (0.85) the words do
  not read as complete. Not so for statements: one can always take more
  ("... tonight", "... at seven"), so Whisper doubts complete ones too (see
  ``statement_end`` below).
  And for any turn, the sound under the last word
  (``asr.Transcript.last_word_sound_s``): cut at a hesitation, Whisper often
  completes the phrase ("Could you send an email to" heard as "... to me?"),
  and its alignment puts such a word where the sound has stopped; with less
  than ``last_word_min_s`` (80 ms) of sound under it the words do not read as
  complete. Whisper is asked for it (``wants_last_word``) only when the words
  otherwise read complete;
- Smart Turn v3.2 (``smart_turn.SmartTurn``), a learned model of whether the
  speech sounds finished (intonation, pace), on the last 8 s of audio.

``mode`` picks which: ``transcript+smart-turn`` (both must agree, the
default), ``transcript``, ``smart-turn``, or ``silence`` (the pause is never
the end; only the full silence is, as before).

When the words read as complete but the turn is *doubted*, it ends after a
shorter silence than the one that ends any turn: Smart Turn doubts it,
Whisper's probability of a sentence end at a statement's full stop is below
``statement_end`` (0.75), or a statement's pitch ends ``pitch_rise_st`` above
this user's usual statement end (``prosody``). A statement's first half is
often a sentence in its own right ("I need to pick up.", "My daughter wants
to learn."), which no rule can tell from a whole turn; Whisper still expects
more there more often than after a complete statement, but not so much more
that its words should wait for the full silence. A doubted question ends
after ``--end-of-turn-doubt-ms`` (500 ms: Smart Turn doubts many complete
short questions, "Do you think so?"), a doubted statement after
``--end-of-turn-statement-doubt-ms`` (700 ms: past a 0.6 s hesitation). On
the end-of-turn bench's ``test3``, written before these were measured,
unfinished phrases cut from their sentence were answered within 600 ms 17
times in 76 before and 6 after, while complete turns of all its sets waited
33 ms longer on average.

Words with no closing mark never read complete: the mark is the surest sign
in the bench's clips that more is coming. But Whisper base leaves it out of
short commands and telephone speech ("10 of clubs"), so words that would read
complete with a full stop, where Smart Turn is sure (``unmarked_sure``), are
doubted as a statement rather than left for the full silence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from duplex_orchestrator.turn_words import (
    final_mark,
    is_statement,
    transcript_complete,
    wants_more,
)

__all__ = [
    "EndOfTurn",
    "EndOfTurnMode",
    "Verdict",
    "final_mark",
    "is_statement",
    "transcript_complete",
    "wants_more",
]

EndOfTurnMode = Literal["transcript+smart-turn", "transcript", "smart-turn", "silence"]


class Verdict(enum.Enum):
    """What the judges say at a pause."""

    COMPLETE = "complete"
    """The turn ends at this pause."""
    DOUBTED = "doubted"
    """The words read as complete, Smart Turn doubts it or Whisper a statement's end:
    the turn ends after a longer silence (``--end-of-turn-doubt-ms``, or
    ``--end-of-turn-statement-doubt-ms`` for a statement), unless speech comes first."""
    INCOMPLETE = "incomplete"
    """More is coming: the turn ends at the next pause, or after the full silence."""


@dataclass(frozen=True)
class EndOfTurn:
    """The policy; ``decide`` is called at a pause with what each judge says."""

    mode: EndOfTurnMode = "transcript+smart-turn"
    threshold: float = 0.5
    """Smart Turn's probability of "complete" at or above which it agrees."""
    continue_window_ms: int = 1000
    """Speech this soon after a turn judged complete continues it: its reply is
    cancelled and the words join the turn (later speech is a barge-in)."""
    question_end: float = 0.85
    """Whisper's probability that a question ends at its "?", below which its words do
    not read as complete (0: the rules alone)."""
    last_word_min_s: float = 0.08
    """Sound under the last word (``asr.Transcript.last_word_sound_s``) below which
    Whisper wrote it without hearing it, so the words do not read as complete (0: not
    asked)."""
    sure_unfinished: float = 0.03
    """Smart Turn's probability of "complete" below which it is sure a question is
    unfinished: the doubted question waits a statement's doubt, not a question's
    (``doubts_long``; 0: never). A filler before the pause ("Can you turn the volume,
    uh ...", heard as "... volume up?") scores 0.005-0.03; few complete questions do."""
    statement_end: float = 0.75
    """Whisper's probability that a statement ends at its full stop, below which the
    turn is doubted, as by Smart Turn: it ends after the doubt's silence (0: never)."""
    pitch_rise_st: float = 3.0
    """Semitones above the user's usual statement end (``prosody``) at or past which a
    statement's pitch has not fallen, and the turn is doubted too (0: never)."""
    pitch_first_fall_st: float | None = -3.5
    """The usual statement end taken for a user until the session has heard three of
    theirs (``prosody.PitchHabit.first_usual_fall_st``; None: no pitch judge until then)."""
    unmarked_sure: float = 0.95
    """Smart Turn's probability at or above which words that read complete but for
    their closing mark ("10 of clubs": Whisper leaves it out on short commands and
    telephone speech) make a doubted turn, as a statement Smart Turn doubts, not an
    unfinished one that waits the full silence (0: never)."""

    @property
    def uses_smart_turn(self) -> bool:
        return "smart-turn" in self.mode

    @property
    def uses_transcript(self) -> bool:
        return "transcript" in self.mode

    def words_complete(
        self,
        transcript: str | None,
        ends_here: float | None = None,
        last_word_sound_s: float | None = None,
    ) -> bool:
        """Whether the words read as a finished turn: the rules of ``transcript_complete``,
        for a question Whisper's ``ends_here`` at least ``question_end``, and at least
        ``last_word_min_s`` of sound under the last word (None: unsaid, either)."""
        if transcript is None or not transcript_complete(transcript):
            return False
        question = final_mark(transcript) == "?"
        if question and ends_here is not None and ends_here < self.question_end:
            return False
        return last_word_sound_s is None or last_word_sound_s >= self.last_word_min_s

    def lacks_only_its_mark(self, transcript: str | None) -> bool:
        """Words that would read complete with a closing full stop, but have none (and
        the policy lets Smart Turn's certainty doubt them: ``unmarked_sure``)."""
        text = (transcript or "").strip()
        return (
            self.unmarked_sure > 0
            and self.uses_smart_turn
            and self.uses_transcript
            and text[-1:].isalnum()
            and transcript_complete(text + ".")
        )

    def wants_last_word(self, transcript: str, ends_here: float | None) -> bool:
        """Whether to align the words to find the sound under the last one (an
        ``asr.AlignWhen``): only where it can change the verdict, i.e. the words read as
        complete so far, so a turn already held back pays nothing for it."""
        return (
            self.uses_transcript
            and self.last_word_min_s > 0
            and self.words_complete(transcript, ends_here)
        )

    def statement_doubted(self, transcript: str, ends_here: float | None) -> bool:
        """A statement Whisper expected more words after: ``ends_here`` below
        ``statement_end`` at its closing "." or "!"."""
        return is_statement(transcript) and ends_here is not None and ends_here < self.statement_end

    def decide(
        self,
        transcript: str | None,
        probability: float | None,
        ends_here: float | None = None,
        last_word_sound_s: float | None = None,
        above_usual_st: float | None = None,
    ) -> Verdict:
        """The verdict at a pause. A judge that could not answer (None) says no;
        ``above_usual_st``: the pitch's end against the user's usual (None: unknown)."""
        heard_finished = probability is not None and probability >= self.threshold
        if self.mode == "silence" or (not self.uses_transcript and not heard_finished):
            return Verdict.INCOMPLETE
        if not self.uses_transcript:
            return Verdict.COMPLETE
        if transcript is None or not self.words_complete(transcript, ends_here, last_word_sound_s):
            sure = probability is not None and probability >= self.unmarked_sure
            if sure and self.lacks_only_its_mark(transcript):
                return Verdict.DOUBTED  # the sound is sure; only the mark is missing
            return Verdict.INCOMPLETE
        if self.uses_smart_turn and not heard_finished:
            return Verdict.DOUBTED
        if self.statement_doubted(transcript, ends_here):
            return Verdict.DOUBTED
        if self.pitch_doubted(transcript, above_usual_st):
            return Verdict.DOUBTED
        return Verdict.COMPLETE

    def doubts_long(self, transcript: str | None, probability: float | None) -> bool:
        """Whether a doubted turn waits a statement's doubt: a statement (or words with
        no closing mark) always; a question when Smart Turn is sure it is unfinished
        (below ``sure_unfinished``)."""
        if transcript is not None and (
            is_statement(transcript) or self.lacks_only_its_mark(transcript)
        ):
            return True
        return probability is not None and probability < self.sure_unfinished

    def pitch_doubted(self, transcript: str, above_usual_st: float | None) -> bool:
        """A statement ending ``pitch_rise_st`` or more above the user's usual end."""
        rise = self.pitch_rise_st
        return rise > 0 and (above_usual_st or 0.0) >= rise and is_statement(transcript)
