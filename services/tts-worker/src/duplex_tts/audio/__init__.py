"""Worker-side audio: resampling to 48 kHz, loudness, 20 ms framing. Adapters never touch these."""

from duplex_tts.audio.framing import Framer, fade_out, float_to_pcm16
from duplex_tts.audio.loudness import TARGET_LUFS, calibrate_gain, integrated_loudness
from duplex_tts.audio.pipeline import AudioPipeline
from duplex_tts.audio.resample import StreamResampler

__all__ = [
    "TARGET_LUFS",
    "AudioPipeline",
    "Framer",
    "StreamResampler",
    "calibrate_gain",
    "fade_out",
    "float_to_pcm16",
    "integrated_loudness",
]
