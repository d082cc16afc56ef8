"""The words of a finished turn: rules of English, pure, no I/O (``transcript_complete``).

A turn with no final punctuation, ending in "...", a statement ending on a word
that needs a continuation ("to", "the", "and", "about", ...) or on an
infinitive ("I would like to order."), a request ending on a verb that wants
two objects and has one ("Could you remind me?"), a wh-question whose "do" or
modal has its subject but no verb ("What time does the museum?", "Where can
I?"), a clause that is only its subject and a verb that needs an object
("Could you please find?", "I really want."), a wish ending on "if you could",
a "to" or an infinitive still missing its verb or object ("How much would it
cost to?", "Tell me how to make."), a question ending on a preposition with no
wh-word to be its object ("Can you book me a flight to?") or on a relative
pronoun ("Do you know anyone who?"), or any turn, even a question, ending on a
determiner or a conjunction or on a determiner and a preposition ("Can you
tell me the about?", Whisper's hearing of "about" and a pause), or on a filler
after other words ("Can you explain why, um?") is not complete. These are rules
of English, not a model: ``tests.bench.bench_end_of_turn`` measures how they
carry over to phrases they were not written for. The end-of-turn policy
(``endpoint``) reads them beside Whisper's doubt, the sound under the last
word, Smart Turn and the pitch. A statement (``is_statement``) closes with "."
or "!" and does not ask by its words (``asks``: "Can you tell me the time."
is a question Whisper closed with a full stop).
"""

from __future__ import annotations

import re

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
# A filler after other words is a speaker holding the floor, not a finished turn,
# even where Whisper closes it as a question ("Can you explain why, um?"). Alone
# ("Hmm?") or doubled ("mm-hmm", "uh-huh": a backchannel) it may be the whole turn.
_FILLERS = frozenset(["um", "umm", "uh", "uhh", "uhm", "er", "erm", "hmm", "hm", "mm"])
_MM_HMM = re.compile(r"m+-hm+[.!]")
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
# A question puts one of these before its subject ("Can you ...?", "Is there ...?"),
# which Whisper sometimes closes with a full stop all the same.
_ASKING_VERBS = (_DO_OR_MODAL - {"do"}) | frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "am",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "doesn't",
        "didn't",
        "can't",
        "couldn't",
        "won't",
        "wouldn't",
        "shouldn't",
    ]
)
# A wh-question's verb: those, and "do" and "have" ("What do you think", "Where have
# you been").
_WH_VERBS = _ASKING_VERBS | frozenset(["do", "don't", "have", "has", "had"])
# Verbs that open a condition before its subject ("Had he known, ...", "Were it
# mine, ...", "Should you need it, ..."): a clause after it says what follows.
_CONDITIONS = frozenset(["had", "were", "should"])
_ASKED_OF = _SUBJECTS | frozenset(
    ["there", "this", "that", "these", "those", "anyone", "anybody", "someone", "somebody"]
)
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
# A word is letters or digits: Whisper writes numbers as digits ("Book a table for 2.",
# "Wake me up at 7."), and a number is the word a sentence ends on, not the
# preposition before it.
_WORDS = re.compile(r"[a-z0-9']+")


def final_mark(text: str) -> str:
    """The text's closing ".", "?" or "!" (past quotes and brackets), or "" if none."""
    match = _FINAL.search(text.strip())
    return match.group()[0] if match else ""


def is_statement(text: str) -> bool:
    """Whether the text closes as a statement (".", "!"), not a question or unclosed: a
    question by its words is none, even where Whisper closed it with a full stop
    ("Can you tell me about the weather tomorrow.": ``asks``)."""
    mark = final_mark(text)
    return mark == "!" or (mark == "." and not asks(text))


def asks(text: str) -> bool:
    """Whether the last sentence asks by its words, whatever its closing mark: a clause
    of it opens with "do" or a modal or "be" and its subject ("Can you", "Is there",
    "Does the", "isn't it"), or a wh-word and such a verb ("Where is", "What's", "What
    time does"). A wh-word and its subject open a statement ("When you can, ..."), and
    "had", "were" or "should" and its subject a condition, where a clause follows."""
    sentence = re.split(r"[.?!]\s", text.strip())[-1]
    clauses = [_WORDS.findall(clause) for clause in _CLAUSE_BREAK.split(sentence.lower())]
    for at, words in enumerate(clauses):
        if not words or (at < len(clauses) - 1 and words[0] in _CONDITIONS):
            continue  # "Had he known, he would have come.": a condition, not a question
        if _inverted(words) or _wh_asks(words):
            return True
    return False


def _inverted(words: list[str]) -> bool:
    """A verb before its subject: "can you", "is there", "does the", "isn't it"."""
    verb, subject = words[0], words[1] if len(words) > 1 else ""
    if verb in ("do", "don't"):  # "Do it now.", "Do the dishes.": an order
        return subject in ("i", "you", "we", "they")
    if verb in ("have", "has", "had", "haven't", "hasn't"):  # "Have a nice day."
        return subject in _SUBJECTS or subject == "there"
    return verb in _ASKING_VERBS and (subject in _ASKED_OF or subject in _DETERMINERS)


def _wh_asks(words: list[str]) -> bool:
    """A wh-word and its verb: "where is", "what's", "what time does"."""
    first = words[0]
    if first in ("what's", "where's", "who's", "how's", "when's", "why's"):
        return True
    if first not in _WH and first != "why":
        return False
    rest = words[1:3]
    if rest[:1] and rest[0] in _WH_VERBS:
        return True
    return len(rest) == 2 and rest[0] not in _SUBJECTS and rest[1] in _WH_VERBS


def transcript_complete(text: str) -> bool:
    """Whether a (partial) transcript reads as a finished turn."""
    text = text.strip()
    if not text or text.endswith(("...", "…", ",", "-", "—")) or not _FINAL.search(text):
        return False
    if _MM_HMM.fullmatch(text.lower()):
        return True  # "mm" and "hmm" are fillers, but together one word: "go on"
    words = [w.strip("'") for w in _WORDS.findall(text.lower())]
    # "Could you remind me?", "Can you tell me about?": of what, about what?
    for asks in (words[-2:], words[-3:-1] if words and words[-1] in _CONTINUES else []):
        if len(asks) == 2 and asks[0] in _WANTS_TWO and asks[1] in ("me", "us"):
            return False
    if words and (
        words[-1] in _NEVER_LAST
        or (len(words) >= 2 and words[-1] in _CONTINUES and words[-2] in _DETERMINERS)
        or (len(words) >= 2 and words[-1] in _FILLERS and words[-2] not in _FILLERS)
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


def wants_more(text: str) -> bool:
    """Whether the words are unfinished for what they say, not only for a missing mark:
    a last word that continues after other words ("... a table for", "... book, um"),
    or a closing mark after words the rules call unfinished ("I would like to order.",
    "Could you remind me?"). Of the end-of-turn bench's clips at their pause, 4 of 405
    complete turns read so (Whisper's mishearings of espeak-ng), and 440 of 1,039
    unfinished ones (24 of 146 cut from people's recordings)."""
    text = text.strip()
    words = [w.strip("'") for w in _WORDS.findall(text.lower())]
    if len(words) >= 2 and words[-1] in _CONTINUES:
        return True
    return bool(words) and bool(_FINAL.search(text)) and not transcript_complete(text)


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
