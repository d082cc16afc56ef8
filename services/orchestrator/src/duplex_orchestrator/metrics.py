"""Prometheus metrics of the orchestrator (names prefixed ``duplex_``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from duplex_orchestrator.routing.policy import WorkerView

_LATENCY = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

VOICE_TO_VOICE = Histogram(
    "duplex_voice_to_voice_seconds",
    "End of user speech (VAD) → first reply frame sent",
    buckets=_LATENCY,
)
FIRST_AUDIO = Histogram(
    "duplex_first_audio_seconds", "Reply text started → first reply frame sent", buckets=_LATENCY
)
ASR_LATENCY = Histogram(
    "duplex_asr_seconds", "Whisper transcription time per utterance", buckets=_LATENCY
)
TURN_ENDS = Counter(
    "duplex_turn_ends_total",
    "How user turns ended: judged_complete at a pause, judged_after_doubt (the words "
    "read complete, Smart Turn or Whisper doubted: a longer silence), judged_unanswered "
    "(the words read complete, Smart Turn had not answered by that silence), "
    "judged_after_patience (judged "
    "complete, but this user has gone on after a longer pause), silence (the longest wait), "
    "silence_after_patience (a longer one: this user went on after that silence before), "
    "silence_after_unfinished (a longer one: the words at that pause wanted more), "
    "too_long (cut), client (the client sent end_turn), "
    "continued (ended at a pause, then the user went on)",
    ["by"],
)
PITCH_DOUBTS = Counter(
    "duplex_pitch_doubts_total",
    "Statements whose words read complete, doubted because their pitch ended "
    "--end-of-turn-pitch-rise-st or more above this user's usual statement end",
)
REPLY_HOLDS = Counter(
    "duplex_reply_holds_total",
    "Replies to a turn ended at a pause whose first sound waited, for Smart Turn or "
    "the doubt's silence to confirm the end or on a sound that might be the user's "
    "next word, by outcome: spoke, or withdrawn (the user went on; nothing of the "
    "reply was heard)",
    ["outcome"],
)
SPECULATIONS = Counter(
    "duplex_asr_speculations_total",
    "Transcriptions started before the turn was known to end, at the gap (the first "
    "silence) or the pause, by outcome: used (the turn's transcript) or stale (speech "
    "went on, or the turn ended otherwise)",
    ["at", "outcome"],
)
BARGE_INS = Counter(
    "duplex_barge_in_total",
    "Barge-ins by outcome: stop (words), resume (no words: noise), backchannel (only a "
    'listener\'s acknowledgement, "uh-huh": resumed)',
    ["outcome"],
)
BARGE_IN_LATENCY = Histogram(
    "duplex_barge_in_pause_seconds",
    "VAD onset → client told to flush and worker paused",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
)
ROUTING = Counter("duplex_routing_decisions_total", "Routing decisions", ["reason"])
SESSIONS = Gauge("duplex_active_sessions", "Open client sessions")
ERRORS = Counter("duplex_session_errors_total", "Error events sent to clients", ["code"])
WORKERS = Gauge(
    "duplex_workers", "Workers in the routing table: ready (routable) or not_ready", ["state"]
)
LEASE_EXPIRIES = Counter(
    "duplex_lease_expiries_total", "Worker Leases seen to lapse (renewTime + duration passed)"
)


def report_workers(snapshot: Callable[[], Iterable[WorkerView]]) -> None:
    """Read the routing table at each scrape (``duplex_workers``); the last caller wins."""
    WORKERS.labels(state="ready").set_function(lambda: sum(v.healthy for v in snapshot()))
    WORKERS.labels(state="not_ready").set_function(lambda: sum(not v.healthy for v in snapshot()))
