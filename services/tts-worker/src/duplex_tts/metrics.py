"""Prometheus metrics of the worker (names prefixed ``duplex_tts_``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_SMALL_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
_LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)

FIRST_AUDIO = Histogram(
    "duplex_tts_first_audio_seconds",
    "First clause ready for synthesis → first frame sent",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
RTF = Histogram(
    "duplex_tts_real_time_factor",
    "Synthesis time / audio duration, per clause",
    ["model"],
    buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0),
)
FRAME_LATENESS = Histogram(
    "duplex_tts_frame_jitter_seconds",
    "How late each frame left versus its wall-clock schedule",
    buckets=_SMALL_BUCKETS,
)
UNDERRUNS = Counter(
    "duplex_tts_underruns_total", "Frames that left more than a frame late (schedule re-anchored)"
)
QUEUE_DEPTH = Gauge("duplex_tts_queue_depth", "Text segments waiting for or under synthesis")
ACTIVE_SESSIONS = Gauge("duplex_tts_active_sessions", "Open sessions")
PAUSE_LATENCY = Histogram(
    "duplex_tts_pause_latency_seconds",
    "Control(PAUSE) received → emission stopped",
    buckets=_SMALL_BUCKETS,
)
CONTROLS = Counter("duplex_tts_controls_total", "Control requests", ["action"])
MODEL_LOAD = Histogram(
    "duplex_tts_model_load_seconds", "Model load time", ["model", "family"], buckets=_LOAD_BUCKETS
)
MODEL_WARMUP = Histogram(
    "duplex_tts_model_warmup_seconds",
    "Model warm-up time",
    ["model", "family"],
    buckets=_LOAD_BUCKETS,
)
MODEL_UNLOAD = Histogram(
    "duplex_tts_model_unload_seconds",
    "Model unload time",
    ["model", "family"],
    buckets=_LOAD_BUCKETS,
)
MODEL_LOAD_FAILURES = Counter(
    "duplex_tts_model_load_failures_total", "Failed model loads", ["model", "family"]
)
EVICTIONS = Counter("duplex_tts_model_evictions_total", "Models evicted", ["model", "reason"])
RESIDENT_MODELS = Gauge("duplex_tts_resident_models", "Models loaded and ready")
