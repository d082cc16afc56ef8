"""duplex's control of a LiveKit room's agent: its messages on the data channel, and
the participant's choice of turns.

``Control`` carries duplex's control messages over the room's data channel
(topic ``duplex``, the WebSocket protocol's JSON): ``model`` switches the
voice (loaded in the background, the active one speaks meanwhile),
``interrupt`` and ``say`` act on the session, ``ping`` answers ``pong``,
``end_turn`` ends the user's turn; answers and errors go back on the same topic.
The participant's ``duplex.turn_detection`` attribute (``"manual"``: push to talk,
or ``"auto"``) chooses who ends the turns, as the WebSocket's ``start`` does.
``follow_room`` brings both from the room to a ``Control``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from livekit import rtc
from livekit.agents import AgentSession

from duplex_livekit.tts import DuplexTTS
from duplex_livekit.turns import DuplexTurnDetector
from duplex_livekit.vad import DuplexVAD
from duplex_orchestrator.events import Error, Event, Pong, to_json
from duplex_orchestrator.protocol import (
    EndTurn,
    Interrupt,
    Model,
    Ping,
    ProtocolError,
    Say,
    parse,
)

CONTROL_TOPIC = "duplex"
TURN_DETECTION_ATTRIBUTE = "duplex.turn_detection"
"""The participant attribute that chooses manual turns (push to talk) or automatic ones."""


class Control:
    """duplex's control messages from the room (topic ``duplex``), answered on the same
    topic, and the participant's choice of turns. ``turns``: the session's detector
    (default: AgentSession's, where it judges)."""

    def __init__(
        self,
        session: AgentSession[None],
        voice: DuplexTTS,
        send: Callable[[bytes], Awaitable[None]],
        turns: DuplexTurnDetector | None = None,
    ) -> None:
        self._session = session
        self._voice = voice
        self._send = send
        detector = session.turn_detection
        self._turns = turns or (detector if isinstance(detector, DuplexTurnDetector) else None)

    async def turn_detection(self, mode: str) -> None:
        """The participant's ``duplex.turn_detection``: ``"manual"`` (push to talk: only
        ``end_turn`` ends the user's turn, no pause or silence does, and nobody judges
        it) or ``"auto"`` (also when it is removed); an ``error`` event for anything
        else, and the turns stay as they were."""
        try:
            self._set_turn_detection(mode or "auto")
        except ProtocolError as exc:
            await self._answer(Error(exc.code, str(exc)))

    def _set_turn_detection(self, mode: str) -> None:
        if mode not in ("auto", "manual"):
            raise ProtocolError(
                "bad_message",
                f'{TURN_DETECTION_ATTRIBUTE} must be "auto" (the agent ends turns) or '
                f'"manual" (only end_turn does), not {mode[:40]!r}',
            )
        manual, turns = mode == "manual", self._turns
        if turns is None:
            if manual:
                raise ProtocolError(
                    "unsupported", "manual turns need duplex's turn detector; this session has none"
                )
            return
        if turns.manual != manual:
            turns.set_manual(manual)
            # unjudged, the VAD's silence ends automatic turns, the detector manual ones
            if not turns.judging:
                self._session.update_options(turn_detection=turns if manual else "vad")

    async def handle(self, raw: bytes) -> None:
        try:
            message = parse(raw)
            if isinstance(message, Model):
                await self._answer(await self._voice.switch_model(message.model))
            elif isinstance(message, Interrupt):
                await self._session.interrupt()
            elif isinstance(message, Say):
                self._session.say(message.text)
            elif isinstance(message, Ping):
                await self._answer(Pong())
            elif isinstance(message, EndTurn):
                self._end_turn()
            else:
                raise ProtocolError(
                    "unsupported",
                    f"{type(message).__name__.lower()} is not available over LiveKit "
                    "(the room carries the audio; send model, say, interrupt, end_turn "
                    "or ping)",
                )
        except ProtocolError as exc:
            await self._answer(Error(exc.code, str(exc)))

    def _end_turn(self) -> None:
        """The user's turn is over (a push-to-talk button released): the VAD ends the
        utterance in progress now, not after its pause, and the judges answer their
        verdict on it, or on the words before, without its silence."""
        vad, turns = self._session.vad, self._session.turn_detection
        speaking = isinstance(vad, DuplexVAD) and vad.end_utterance()
        open_turn = isinstance(turns, DuplexTurnDetector) and turns.end_turn()
        if not (speaking or open_turn):
            raise ProtocolError(
                "no_speech", "end_turn: no speech was heard since the last one, nothing to answer"
            )

    async def _answer(self, event: Event) -> None:
        await self._send(to_json(event).encode())


def follow_room(room: rtc.Room, control: Control) -> set[asyncio.Task[None]]:
    """The room's messages for the agent reach ``control``: data packets on topic
    ``duplex``, and each remote participant's ``duplex.turn_detection``, as they join
    (those in the room already too) and whenever they change it. Returns the tasks
    under way (each removes itself when done)."""
    handling: set[asyncio.Task[None]] = set()

    def spawn(work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        handling.add(task)
        task.add_done_callback(handling.discard)

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == CONTROL_TOPIC:
            spawn(control.handle(packet.data))

    def on_attributes(changed: dict[str, str], participant: rtc.Participant) -> None:
        if TURN_DETECTION_ATTRIBUTE in changed and participant != room.local_participant:
            spawn(control.turn_detection(changed[TURN_DETECTION_ATTRIBUTE]))

    def on_joined(participant: rtc.RemoteParticipant) -> None:
        on_attributes(participant.attributes, participant)

    room.on("data_received", on_data)
    room.on("participant_attributes_changed", on_attributes)
    room.on("participant_connected", on_joined)
    for participant in room.remote_participants.values():  # those in the room already
        on_joined(participant)
    return handling
