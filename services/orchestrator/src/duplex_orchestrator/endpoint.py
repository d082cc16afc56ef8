"""End of turn: is the user done, or only pausing? Pure decisions, no I/O.

Silence alone cuts people off at a hesitation ("I'd like to order … a large
pizza") and makes complete answers wait. At a short pause (the VAD's
``SPEECH_PAUSE``, ``--end-of-turn-pause-ms``) the session asks two judges and
ends the turn at once when they agree it is complete; otherwise it waits for
more speech, up to the silence that ends any turn (``--vad-end-ms``):

- the transcript so far (Whisper's punctuation and last words): a turn with no
  final punctuation, ending in "...", a statement ending on a word that
  needs a continuation ("to", "the", "and", "about", ...) or on an
  infinitive ("I would like to order."), a request ending on a verb that
  wants two objects and has one ("Could you remind me?"), a wh-question whose
  "do" or modal has its subject but no verb ("What time does the museum?",
  "Where can I?"), a clause that is only its subject and a verb that needs
  an object ("Could you please find?", "I really want."), a wish ending on
  "if you could", a "to" or an infinitive still missing its verb or object
  ("How much would it cost to?", "Tell me how to make."), a question ending
  on a preposition with no wh-word to be its object ("Can you book me a
  flight to?") or on a relative pronoun ("Do you know anyone who?"), or any
  turn, even a question, ending on a determiner or a conjunction or on a
  determiner and a preposition ("Can you tell me the about?", Whisper's
  hearing of "about" and a pause) is not complete. These are rules of
  English, not a model: ``tests.bench.bench_end_of_turn`` measures how they
  carry over to phrases they were not written for.
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
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

EndOfTurnMode = Literal["transcript+smart-turn", "transcript", "smart-turn", "silence"]

# Words a statement cannot end on: articles, prepositions, conjunctions,
# possessives, fillers. A question may ("What is it about?"), so "?" and "!"
# are complete whatever the last word.
_CONTINUES = frozenset(
    [
        "a",
        "an",
        "the",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "about",
        "from",
        "into",
        "onto",
        "by",
        "as",
        "than",
        "and",
        "or",
        "but",
        "because",
        "if",
        "that",
        "which",
        "whose",
        "when",
        "where",
        "while",
        "although",
        "though",
        "unless",
        "until",
        "my",
        "your",
        "his",
        "her",
        "our",
        "their",
        "very",
        "um",
        "uh",
        "er",
        "erm",
        "hmm",
    ]
)
# "remind me", "tell us": a request that still lacks what to remind or tell
# ("Can you help me?" is complete, so help is not here).
_WANTS_TWO = frozenset(
    ["remind", "tell", "show", "give", "send", "bring", "teach", "buy", "get", "find", "book"]
)
# "like to order", "want to book": a wish whose infinitive has no object yet
# (a "to" after other words is often a preposition: "Welcome to London.").
_WANTING = frozenset(
    ["like", "love", "want", "need", "wish", "hope", "going", "trying", "try", "plan", "have"]
)
# What no sentence, not even a question, ends on: a determiner wants its noun, a
# conjunction its second half ("Can you give me the?", "Is it red and?"), and a
# determiner right before a closing preposition is a misheard word ("Can you tell
# me the about?" for "about" then a pause). "his" and "her" are pronouns too.
_DETERMINERS = frozenset(["a", "an", "the", "my", "your", "our", "their"])
_NEVER_LAST = _DETERMINERS | frozenset(["and", "or", "but", "because", "whether"])
# "What time does the museum?", "Where can I?": after a wh-word, "do" or a modal and
# its subject still want the verb ("open", "buy tickets"). "Why" is left out: "Why
# would I?" is whole as it stands.
_WH = frozenset(["what", "when", "where", "which", "who", "whom", "whose", "how"])
_DO_OR_MODAL = frozenset(
    [
        "do",
        "does",
        "did",
        "will",
        "would",
        "can",
        "could",
        "should",
        "shall",
        "may",
        "might",
        "must",
    ]
)
_SUBJECTS = frozenset(["i", "you", "he", "she", "it", "we", "they"])
# Verbs that cannot go without their object ("Could you please find?", "I really
# want."): a clause that is only its subject (or "do"/a modal and its subject) and
# one of these has not said what. Verbs that may stand alone ("Can you help?",
# "Can you check?", "Could you explain?") are not here.
_NEEDS_OBJECT = frozenset(
    [
        "want",
        "need",
        "find",
        "get",
        "bring",
        "buy",
        "put",
        "give",
        "send",
        "make",
        "take",
        "translate",
        "fetch",
        "grab",
        "add",
        "describe",
        "mention",
        "recommend",
    ]
)
# Words a clause's core is read without: "Could you please find?" is "could you find".
_SOFTENERS = frozenset(
    ["please", "really", "just", "also", "kindly", "still", "actually", "maybe", "perhaps"]
)
# Words before which a last "to" is an infinitive still missing its verb, even in a
# question ("How much would it cost to?", "Is it possible to?"); "Who are you
# talking to?" keeps its preposition.
_TAKES_INFINITIVE = frozenset(
    ["cost", "costs", "take", "takes", "way", "able", "possible", "supposed", "allowed", "how"]
)
# Prepositions a question ends on only when a wh-word is their object ("Where is it
# from?", "Who is it for?"); with none ("Can you book me a flight to?") the object is
# still to come. Particles that end questions whole ("Can I come in?", "Is it on?")
# are not here.
_STRANDED = frozenset(["to", "for", "with", "about", "from", "of", "at", "into", "onto"])
# A relative pronoun after other words wants its clause ("Do you know anyone who?").
_RELATIVE = frozenset(["who", "whom", "whose", "which"])
_CLAUSE_BREAK = re.compile(r"[,;:]|[.?!]\s")
_FINAL = re.compile(r"[.?!]['\")\]]*$")
_WORDS = re.compile(r"[a-z']+")


def final_mark(text: str) -> str:
    """The text's closing ".", "?" or "!" (past quotes and brackets), or "" if none."""
    match = _FINAL.search(text.strip())
    return match.group()[0] if match else ""


def is_statement(text: str) -> bool:
    """Whether the text closes as a statement (".", "!"), not a question or unclosed."""
    return final_mark(text) in (".", "!")


def transcript_complete(text: str) -> bool:
    """Whether a (partial) transcript reads as a finished turn."""
    text = text.strip()
    if not text or text.endswith(("...", "…", ",", "-", "—")) or not _FINAL.search(text):
        return False
    words = [w.strip("'") for w in _WORDS.findall(text.lower())]
    # "Could you remind me?", "Can you tell me about?": of what, about what?
    for asks in (words[-2:], words[-3:-1] if words and words[-1] in _CONTINUES else []):
        if len(asks) == 2 and asks[0] in _WANTS_TWO and asks[1] in ("me", "us"):
            return False
    if words and (
        words[-1] in _NEVER_LAST
        or (len(words) >= 2 and words[-1] in _CONTINUES and words[-2] in _DETERMINERS)
    ):
        return False
    if _wants_its_verb(words) or _lacks_its_object(text) or _wants_its_infinitive(words):
        return False
    if len(words) >= 2 and (
        words[-1] in _RELATIVE or (words[-1] in _STRANDED and not _WH.intersection(words))
    ):
        return False
    if text.endswith(("?", "!")):
        return True
    if len(words) >= 3 and words[-2] == "to" and words[-3] in _WANTING:
        return False  # "I would like to order.": what to order is still to come
    return bool(words) and words[-1] not in _CONTINUES


def _wants_its_verb(words: list[str]) -> bool:
    """A wh-question ending on "do" or a modal and its subject: a pronoun ("can I")
    or a determiner and a noun ("does the museum")."""
    for aux_at in (-2, -3):
        if len(words) < 1 - aux_at:
            continue
        aux, subject = words[aux_at], words[aux_at + 1 :]
        named = subject[0] in _SUBJECTS if len(subject) == 1 else subject[0] in _DETERMINERS
        if aux in _DO_OR_MODAL and named and any(w in _WH for w in words[:aux_at]):
            return True
    return False


def _lacks_its_object(text: str) -> bool:
    """The last clause is a verb that needs an object and has none: its subject and
    the verb ("I really want"), "do" or a modal, its subject and the verb ("Could
    you please find"), the verb alone ("Please translate"), or a wish ending on
    "if" or "whether", a subject and a past modal ("I was wondering if you could")."""
    clause = _CLAUSE_BREAK.split(text.lower().rstrip(".?!'\")]"))[-1]
    core = [w for w in _WORDS.findall(clause) if w not in _SOFTENERS]
    if len(core) >= 3 and core[-3] in ("if", "whether") and core[-2] in _SUBJECTS:
        return core[-1] in ("could", "would", "might")
    if not core or core[-1] not in _NEEDS_OBJECT:
        return False
    return (
        len(core) == 1
        or (len(core) == 2 and core[0] in _SUBJECTS)
        or (len(core) == 3 and core[0] in _DO_OR_MODAL and core[1] in _SUBJECTS)
    )


def _wants_its_infinitive(words: list[str]) -> bool:
    """A last "to" after a word that takes an infinitive ("cost to", "possible to"), or
    a last infinitive that needs an object after a wish or "how" ("Tell me how to
    make", "I need to buy") with no "what", "which" or "who" before to be it."""
    if len(words) >= 2 and words[-1] == "to" and words[-2] in _TAKES_INFINITIVE:
        return True
    return (
        len(words) >= 3
        and words[-2] == "to"
        and words[-1] in _NEEDS_OBJECT
        and words[-3] in _WANTING | {"how", "where", "when"}
        and not {"what", "which", "who", "whom"}.intersection(words[:-3])
    )


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
    statement_end: float = 0.75
    """Whisper's probability that a statement ends at its full stop, below which the
    turn is doubted, as by Smart Turn: it ends after the doubt's silence (0: never)."""
    pitch_rise_st: float = 3.0
    """Semitones above the user's usual statement end (``prosody``) at or past which a
    statement's pitch has not fallen, and the turn is doubted too (0: never)."""

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
            return Verdict.INCOMPLETE
        if self.uses_smart_turn and not heard_finished:
            return Verdict.DOUBTED
        if self.statement_doubted(transcript, ends_here):
            return Verdict.DOUBTED
        if self.pitch_doubted(transcript, above_usual_st):
            return Verdict.DOUBTED
        return Verdict.COMPLETE

    def pitch_doubted(self, transcript: str, above_usual_st: float | None) -> bool:
        """A statement ending ``pitch_rise_st`` or more above the user's usual end."""
        rise = self.pitch_rise_st
        return rise > 0 and (above_usual_st or 0.0) >= rise and is_statement(transcript)
