"""The room's messages for the agent (``control.follow_room``): data packets on topic
``duplex``, and each remote participant's ``duplex.turn_detection``. A stand-in room
emits the events the LiveKit SDK's ``rtc.Room`` emits; no server is involved."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from livekit import rtc

from duplex_livekit.control import CONTROL_TOPIC, TURN_DETECTION_ATTRIBUTE, follow_room
from tests.support.livekit_turns import room_control


@dataclass(eq=False)
class Participant:
    identity: str
    attributes: dict[str, str] = field(default_factory=dict)


class Room(rtc.EventEmitter[str]):
    """What ``follow_room`` uses of ``rtc.Room``: its events and its participants."""

    def __init__(self, *already: Participant) -> None:
        super().__init__()
        self.local_participant = Participant("agent")
        self.remote_participants = {p.identity: p for p in already}


async def _done(handling: set[asyncio.Task[None]]) -> None:
    await asyncio.gather(*list(handling))


async def test_a_participant_already_in_the_room_chooses_manual_turns() -> None:
    control, parts, sent = await room_control()
    room = Room(Participant("user", {TURN_DETECTION_ATTRIBUTE: "manual"}))
    await _done(follow_room(room, control))  # type: ignore[arg-type]
    assert parts.turns is not None
    assert parts.turns.manual
    assert sent == []


async def test_the_turns_follow_the_participants_attribute_as_it_changes() -> None:
    control, parts, sent = await room_control()
    turns = parts.turns
    assert turns is not None
    room = Room()
    handling = follow_room(room, control)  # type: ignore[arg-type]
    user = Participant("user", {TURN_DETECTION_ATTRIBUTE: "manual"})
    room.emit("participant_connected", user)
    await _done(handling)
    assert turns.manual
    room.emit("participant_attributes_changed", {"name": "Ada"}, user)  # another attribute
    await _done(handling)
    assert turns.manual
    room.emit("participant_attributes_changed", {TURN_DETECTION_ATTRIBUTE: ""}, user)  # removed
    await _done(handling)
    assert not turns.manual
    # the agent's own attributes are not the user's choice
    room.emit(
        "participant_attributes_changed",
        {TURN_DETECTION_ATTRIBUTE: "manual"},
        room.local_participant,
    )
    await _done(handling)
    assert not turns.manual
    room.emit("participant_attributes_changed", {TURN_DETECTION_ATTRIBUTE: "sometimes"}, user)
    await _done(handling)
    assert [event["code"] for event in sent] == ["bad_message"]
    assert not turns.manual


async def test_control_messages_come_on_the_duplex_topic_only() -> None:
    control, _, sent = await room_control()
    room = Room()
    handling = follow_room(room, control)  # type: ignore[arg-type]
    kind = rtc.DataPacketKind.KIND_RELIABLE
    ping = json.dumps({"type": "ping"}).encode()
    room.emit("data_received", rtc.DataPacket(ping, kind, None, topic="chat"))
    room.emit("data_received", rtc.DataPacket(ping, kind, None, topic=CONTROL_TOPIC))
    room.emit("data_received", rtc.DataPacket(b"{not json", kind, None, topic=CONTROL_TOPIC))
    await _done(handling)
    assert sorted(str(event["type"]) for event in sent) == ["error", "pong"]
    assert [event["code"] for event in sent if event["type"] == "error"] == ["bad_json"]
