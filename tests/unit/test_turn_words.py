"""The words of a finished turn: the rules of English (``turn_words``), as a table.

What a transcript (Whisper's, with its punctuation) reads as: a finished turn,
or a first half that the person will go on from.
"""

from __future__ import annotations

import pytest

from duplex_orchestrator.endpoint import is_statement, transcript_complete


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("What time does the museum open tomorrow?", True),
        ("Please remind me to call my sister tonight.", True),
        ("What is it about?", True),  # a question may end on a preposition
        ("Stop!", True),
        ("I would like to order a large...", False),
        ("I was wondering if you...", False),
        ("Tell me a joke about.", False),  # Whisper's period on a cut-off statement
        ("I'd like to book a table for the.", False),
        ("Could you remind me", False),  # no final punctuation
        ("Could you remind me?", False),  # remind me of what?
        ("Can you tell us?", False),
        ("Can you help me?", True),
        ("Can you tell me about?", False),
        ("I would like to order.", False),  # order what?
        ("Can you tell me the about?", False),  # Whisper's hearing of a hesitation
        # a filler after other words holds the floor, even closed as a question
        ("Can you explain why, um?", False),
        ("Do you think it will, um?", False),
        ("What about it, hm?", False),
        ("Um, can you explain why?", True),  # a filler first is no hesitation at the end
        ("Hmm?", True),  # alone, a whole turn
        ("Uh-huh.", True),  # a backchannel, not a filler after words
        ("Mm-hmm.", True),  # the same, though "mm" and "hmm" alone are fillers
        ("Mm, hmm.", False),  # a filler after a filler, not the one word
        ("Nice, huh?", True),  # a tag, not a filler
        ("Can you give me the?", False),
        ("Is it red and?", False),
        ("Who are you talking to?", True),
        ("Did you call her?", True),
        ("Can you tell me the time?", True),
        ("I'd like to book.", False),
        ("I'd like to go to Paris.", True),
        ("Welcome to London.", True),
        # A wh-question whose "do" or modal has its subject but not yet its verb.
        ("What time does the museum?", False),  # Kokoro's 260 ms pause before "open"
        ("Where can I?", False),
        ("How do you?", False),
        ("So which one should we?", False),
        ("What time does the museum open?", True),
        ("What would you like?", True),
        ("Where can I buy tickets?", True),
        ("Why would I?", True),  # complete as it stands: "why" wants no more
        ("Can you?", True),
        ("Who are you?", True),
        # A clause that is only its subject (or "do"/a modal and it) and a verb that
        # needs an object has not said what.
        ("Could you please find?", False),
        ("Could you translate?", False),
        ("The thing is, I really want.", False),
        ("Please translate.", False),
        ("Do you want?", False),
        ("What do you want?", True),  # the wh-word is the object
        ("Thanks, that's all I need.", True),  # the object came first
        ("Can you find a hotel?", True),
        ("Can you help?", True),  # a verb that may stand alone
        # A wish ending on "if" and a subject and a past modal; a "to" after a word
        # that takes an infinitive; "whether" last.
        ("I was wondering if you could.", False),
        ("Let me know if you can.", True),
        ("Yes, I could.", True),
        ("How much would it cost to?", False),
        ("Is it possible to?", False),
        ("Where are you going to?", True),
        ("Can you check whether?", False),
        # A question ending on a preposition with no wh-word to be its object, or on a
        # relative pronoun; an infinitive that needs an object after a wish or "how".
        ("Can you book me a flight to?", False),
        ("Do you know anyone who?", False),
        ("Where is it from?", True),
        ("Who is it for?", True),
        ("Can I come in?", True),  # a particle, not a preposition
        ("Tell me how to make.", False),
        ("What do you need to buy?", True),
        ("Is there anything to add?", True),
        ("So, um.", False),
        ("well,", False),
        # A number Whisper writes in digits is the last word, not the word before it.
        ("Book a table for 2.", True),
        ("Wake me up at 7.", True),
        ("Call me at 5:30.", True),
        ("Set a timer for 10.", True),
        ("Book a table for 2 at.", False),
        ("", False),
    ],
)
def test_a_transcript_reads_as_complete_or_not(text: str, complete: bool) -> None:
    assert transcript_complete(text) is complete


@pytest.mark.parametrize(
    ("text", "statement"),
    [
        ("I need a taxi.", True),
        ("Stop the music!", True),
        ("Is it true?", False),
        ("Is it true", False),  # no closing mark: unclosed
        # a question by its words, closed with a full stop by Whisper
        ("Can you tell me about the weather tomorrow.", False),
        ("Is there a bank near here.", False),
        ("Does the museum open on Sunday.", False),
        ("Do you have a table for two.", False),
        ("Have you seen my keys.", False),
        ("Where is the station.", False),
        ("What's the time.", False),
        ("What time does the museum open.", False),
        ("How do I get to the station.", False),
        ("What do you think.", False),
        ("Where have you been.", False),
        ("How much is it.", False),
        ("It is open, isn't it.", False),
        ("Thanks. Could you book me a table.", False),  # the last sentence asks
        # statements and orders that open like questions do not ask
        ("Could you book it. I need a taxi.", True),
        ("Do it now.", True),
        ("Do the dishes.", True),
        ("Have a nice day.", True),
        ("When you can, call me.", True),
        ("Had he married a more amiable woman, he might have been made still.", True),
        ("Should you need anything, call me.", True),
        ("Should I call you.", False),
        ("How I did it is a secret.", True),
        ("Will do.", True),
        ("Please remind me to call my sister tonight.", True),
    ],
)
def test_a_question_by_its_words_is_no_statement_whatever_its_mark(
    text: str, statement: bool
) -> None:
    assert is_statement(text) is statement
