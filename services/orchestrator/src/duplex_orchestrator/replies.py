"""A session's replies: the one being spoken, the conversation's history, the client's text.

The session decides when to answer (a turn's words, a client's ``say`` or text);
``Replies`` starts that reply on the ``Speaker`` (stopping the one before it),
pauses it before its first sound when the user is already speaking, stops it,
and keeps what was said for the LLM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from duplex_orchestrator.events import BargeIn
from duplex_orchestrator.feeds import ClientText, ReplayableText, TextTooLong
from duplex_orchestrator.heard import SpeakingRate, heard_part
from duplex_orchestrator.llm import HISTORY_CHARS, LLMBridge, LLMError, recent, with_words
from duplex_orchestrator.pause_ends import PauseEnds
from duplex_orchestrator.protocol import ProtocolError, Text
from duplex_orchestrator.reply import Reply
from duplex_orchestrator.session_parts import SessionIO
from duplex_orchestrator.speaker import MAX_REPLY_CHARS, Speaker
from duplex_orchestrator.spoken import spoken
from duplex_orchestrator.turns import Turns

log = logging.getLogger(__name__)


class Replies:
    """One reply at a time for one session, and the history its LLM is given."""

    def __init__(
        self,
        io: SessionIO,
        speaker: Speaker,
        turns: Turns,
        pause_ends: PauseEnds,
        user_speaking: Callable[[], bool],
        clock: Callable[[], float],
        history_chars: int = HISTORY_CHARS,
    ) -> None:
        self._io = io
        self._speaker = speaker
        self._turns = turns
        self._pause_ends = pause_ends
        self._user_speaking = user_speaking
        self._clock = clock
        self.current: Reply | None = None
        self._task: asyncio.Task[None] | None = None
        self._client_text: ClientText | None = None
        self.history: list[dict[str, str]] = []
        """The conversation so far, as the LLM is given it: the user's turns and the
        replies' text, the client's ``say`` and text streams too (of a reply cut off, what
        the user heard of it)."""
        self._history_chars = history_chars
        self._rate = SpeakingRate()
        self._latest_words: tuple[asyncio.Task[Any] | None, dict[str, str]] | None = None
        """The latest turn's words in the history, and the task that put them there."""
        self._turn = 0

    def add_words(self, text: str) -> list[dict[str, str]]:
        """A turn's words go in the history (``forget_words`` can take them out again):
        the conversation before them, for the LLM, as much as it is given (``recent``;
        nothing older is kept)."""
        earlier = recent(self.history, self._history_chars)
        words = {"role": "user", "content": text}
        self.history = [*earlier, words]
        self._latest_words = (asyncio.current_task(), words)
        return earlier

    async def answer(
        self, text: str, llm: LLMBridge, *, source: str, speech_ended_at: float | None = None
    ) -> None:
        """The user's words (``source`` "voice": spoken, "typed": ``user_text``) answered:
        they join the history, and the LLM's reply, made fit to be spoken, starts."""
        await self.stop()  # the reply under way goes in the history first, as heard
        earlier = self.add_words(text)
        deltas = with_words(spoken(llm.reply(text, earlier)))
        await self.start(deltas, source=source, speech_ended_at=speech_ended_at)

    def forget_words(self, answering: asyncio.Task[Any]) -> None:
        """Take the words that the task ``answering`` put in the history, and what came
        after them (its reply), out of it: the turn went on. Not by the history's length
        when the turn ended: a reply the user had just cut off goes in only once it has
        stopped, after that, and went out with them (the LLM forgot what it had said)."""
        latest, self._latest_words = self._latest_words, None
        if latest is None or latest[0] is not answering:
            return  # it ended before its words went in: nothing of it is there
        for i in range(len(self.history) - 1, -1, -1):
            if self.history[i] is latest[1]:
                del self.history[i:]
                return

    @property
    def going_on(self) -> bool:
        """A reply is under way (not yet finished or stopped)."""
        return self.current is not None and not self.current.finished

    async def stream_text(self, message: Text) -> None:
        """Text from the client: the first part with words starts a reply, the rest
        feed it. Blank parts before it (an LLM's first chunk is often empty) start
        nothing and stop nothing; a stream that ends blank is an error, as an empty
        ``say`` is, rather than a reply of one silent frame."""
        if self._client_text is None or self._client_text.closed:
            self._client_text = ClientText(MAX_REPLY_CHARS)
        stream = self._client_text
        started = stream.has_words  # its reply began with its first words
        try:
            stream.push(message.text, message.final)
        except TextTooLong as exc:
            raise ProtocolError("too_large", str(exc)) from None
        if started:
            return
        if stream.has_words:
            await self.start(stream.deltas(), source="text")
        elif message.final:
            raise ProtocolError(
                "bad_message", "the text stream ended empty: there is nothing to say"
            )

    async def start(
        self, deltas: AsyncIterator[str], *, source: str, speech_ended_at: float | None = None
    ) -> None:
        """Speak ``deltas`` (stopping the reply before): ``source`` "voice" (a turn's
        answer), "typed" (an answer to ``user_text``), "say" or "text" (the client's).
        Each joins the history, as much of it as was heard: the LLM knows what the agent
        said, a client's greeting too."""
        # The client replacing a reply it is still hearing: as at an interrupt, it drops
        # what it holds of it (nothing after a pause, which dropped it then).
        heard = self.current if source != "voice" else None
        await self.stop()
        if heard is not None and heard.still_playing():
            await self._flush_client(heard)
        self._turn += 1
        self._turns.reply_started()
        reply = Reply(
            self._turn, self._pause_ends.sound_held, self._pause_ends.hold_max_s(), self._clock
        )
        self.current = reply
        if self._user_speaking():
            # The user began speaking before this reply did (their turn ended, by silence,
            # while its words were being heard): as over a reply already sounding, it
            # pauses, unheard, until their words stop it or let it go on (a barge-in).
            self._turns.speech_started()
            await reply.pause()
            await self._io.event(BargeIn("pause", flush=False))
        self._task = asyncio.create_task(
            self._run(reply, ReplayableText(deltas), source, speech_ended_at)
        )

    async def stop(self) -> None:
        """Stop the reply under way, and wait (2 s at most) for it to end."""
        reply, task = self.current, self._task
        if reply is not None:
            await reply.stop()
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 2.0)
            except TimeoutError:
                task.cancel()

    async def interrupt(self) -> None:
        """Stop the reply under way and tell the client to drop what it holds of it."""
        if self.current is not None and self.going_on:
            await self.stop()
            await self._flush_client(self.current)

    async def _flush_client(self, reply: Reply) -> None:
        """Tell the client to drop what it holds of ``reply``, now stopped."""
        reply.flushed()
        await self._io.flush_audio()
        await self._io.event(BargeIn("stop", flush=True))

    async def _run(
        self, reply: Reply, text: ReplayableText, source: str, speech_ended_at: float | None
    ) -> None:
        try:
            await self._speaker.speak(reply, text, speech_ended_at)
        except LLMError as exc:
            await self._speaker.error("llm_failed", str(exc))
        finally:
            try:
                await text.aclose()
            except Exception:  # its cleanup failed: the reply is over all the same
                log.exception("closing a reply's text source failed", extra={"event": "llm_close"})
            reply.finished = True
            if self.current is reply:
                self._turns.reply_finished()
            said = self._said(reply, text)
            if said:
                self.history.append({"role": "assistant", "content": said})

    def _said(self, reply: Reply, text: ReplayableText) -> str:
        """What the user heard of a reply's ``text``: all of it, unless it was stopped
        (a barge-in, an interrupt) before its end (``heard``)."""
        if not reply.stopped:
            self._rate.learn(len(text.text), reply.sent_s)
            return text.text
        return heard_part(text.text, reply.heard_s(), self._rate.chars_per_s, text.complete)
