"""duplex-tts-cosyvoice: the ``cosyvoice`` family, CosyVoice 2 with its text streamed in.

A reply's text goes into CosyVoice 2's LLM as it arrives, word by word (no
clause segmentation): the LLM interleaves text and speech tokens
(``decoding``), so speech starts after the first few words. Speech tokens
become audio through the model's flow-matching decoder and HiFT vocoder in
hops of 25 tokens (one second), the way upstream streams: each hop is
decoded with the tokens that precede it and three of look-ahead, and the
vocoder's cache cross-fades hop into hop. All of it runs on the device
thread (``ExecutorKind.DEVICE``); cancel stops the LLM within a step.

Weights come from ``source.path``: a CosyVoice 2 folder as its authors ship
it (``cosyvoice2.yaml``, ``llm.pt``, ``flow.pt``, ``hift.pt``,
``CosyVoice-BlankEN/``, ``spk2info.pt``). Voices are the speakers saved in
``spk2info.pt`` (upstream's ``add_zero_shot_spk`` + ``save_spkinfo`` make one
from a prompt clip and its transcript); cloning from a session's clip is not
offered by this engine. Voicepack ``params``: see ``CosyVoiceSettings``.

This package lives outside the workspace with its own lock (upstream's
transformers 4.51 conflicts with CSM's), so it has its own environment
(``make cosyvoice-env``) and worker image.
"""

from __future__ import annotations

import collections
import gc
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from duplex_tts.adapters import (
    AdapterError,
    ExecutorKind,
    FloatArray,
    JobStream,
    StreamContext,
    SynthesisStream,
    TTSFamily,
    TTSModel,
    VoiceOptions,
)
from duplex_tts.adapters.sources import require_files, settings_from_params, source_folder
from duplex_tts.catalog import ModelSpec
from duplex_tts_cosyvoice.decoding import SpeechTokenDecoder, Step

TOKEN_HOP = 25  # speech tokens per streamed hop: must match training's static_chunk_size


@dataclass(frozen=True)
class CosyVoiceSettings:
    """Voicepack ``params`` of a CosyVoice 2 voice."""

    speaker: str = ""  # a speaker in spk2info.pt; default: its first
    sampling: int = 25  # top-k of the fallback sampler (upstream's default)
    max_token_text_ratio: float = 20.0  # speech tokens per text token at most
    fp16: bool = False  # half precision for the LLM and flow (CUDA only)

    def __post_init__(self) -> None:
        if self.sampling < 1 or self.max_token_text_ratio <= 0:
            raise ValueError("sampling must be >= 1 and max_token_text_ratio > 0")


@dataclass(frozen=True)
class Speaker:
    """A saved CosyVoice speaker: its prompt and speaker embedding."""

    prompt_text: torch.Tensor  # (1, T) text token ids
    prompt_speech: torch.Tensor  # (1, P) speech tokens
    prompt_feat: torch.Tensor  # (1, 2P, 80) mel frames of the prompt
    embedding: torch.Tensor  # (1, 192) x-vector

    @classmethod
    def from_info(cls, info: dict[str, torch.Tensor]) -> Speaker:
        """From an ``spk2info.pt`` entry: zero-shot (with a prompt) or SFT (embedding only)."""
        empty_ids = torch.zeros(1, 0, dtype=torch.int32)
        embedding = info.get("flow_embedding", info.get("embedding"))
        if embedding is None:
            raise KeyError("flow_embedding")
        return cls(
            prompt_text=info.get("prompt_text", empty_ids),
            prompt_speech=info.get("llm_prompt_speech_token", empty_ids),
            prompt_feat=info.get("prompt_speech_feat", torch.zeros(1, 0, 80)),
            embedding=embedding,
        )


class CosyVoiceModel(TTSModel):
    def __init__(
        self,
        model: Any,
        llm: Any,
        tokenizer: Any,
        speakers: dict[str, Speaker],
        settings: CosyVoiceSettings,
        sample_rate: int,
        device: str,
    ) -> None:
        super().__init__(sample_rate)
        self.model = model  # cosyvoice.cli.model.CosyVoice2Model: flow + HiFT (token2wav)
        self.llm = llm  # cosyvoice.llm.llm.Qwen2LM
        self.tokenizer = tokenizer
        self.speakers = speakers
        self.settings = settings
        self.device = device

    def open_stream(self, context: StreamContext) -> SynthesisStream:
        return CosyVoiceStream(self, context)

    def check_options(self, options: VoiceOptions) -> None:
        if options.reference_audio is not None and options.reference_audio.size:
            raise AdapterError(
                "CosyVoice 2 speaks the speakers saved in its spk2info.pt; it does not clone "
                "from reference_audio here (save the clip as a speaker with upstream's "
                "add_zero_shot_spk and save_spkinfo, or use an xtts voice to clone)"
            )
        self.speaker_for(options)

    def speaker_for(self, options: VoiceOptions) -> Speaker:
        name = options.speaker or self.settings.speaker or next(iter(self.speakers))
        speaker = self.speakers.get(name)
        if speaker is None:
            known = ", ".join(sorted(self.speakers)[:8])
            raise AdapterError(f"CosyVoice has no speaker {name!r}; it has: {known}")
        return speaker

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, allowed_special="all"))

    @property
    def memory_bytes(self) -> int | None:
        parts = (self.llm, self.model.flow, self.model.hift)
        tensors = [t for part in parts for t in (*part.parameters(), *part.buffers())]
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def close(self) -> None:
        self.model = self.llm = None
        self.speakers = {}
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


class CosyVoiceStream(JobStream):
    """One utterance: words into the LLM as they come, hops of audio out."""

    def __init__(self, model: CosyVoiceModel, context: StreamContext) -> None:
        super().__init__(context, model.native_sample_rate)
        self._cosy = model
        self._speaker = model.speaker_for(context.options)
        self._partial = ""  # text after the last word boundary: its tokens may still merge
        self._ids: collections.deque[int] = collections.deque()
        self._ended = False
        self._stalled = False  # the LLM needs text that has not arrived
        self._finished = False
        self._decoder: SpeechTokenDecoder | None = None
        self._tokens: list[int] = []
        self._offset = 0  # speech tokens already turned into audio
        self._llm_done = False
        self._key = uuid.uuid4().hex  # this utterance's slot in the vocoder cache

    # ---- input (event loop) -----------------------------------------------

    def push_text(self, delta: str) -> None:
        text = self._partial + delta
        cut = max(text.rfind(" "), text.rfind("\n"))
        # Whole words only: a byte-level BPE merges across a word's pieces, not across
        # the space that starts the next word.
        words, self._partial = (text[:cut], text[cut:]) if cut > 0 else ("", text)
        self._add(self._cosy.encode(words) if words else [], ended=False)

    def end_input(self) -> None:
        rest, self._partial = self._partial, ""
        self._add(self._cosy.encode(rest) if rest.strip() else [], ended=True)

    def _add(self, ids: list[int], ended: bool) -> None:
        with self.lock:
            self._ids.extend(ids)
            self._ended = self._ended or ended
            if ids or ended:
                self._stalled = False
        self.kick()

    def pending(self) -> tuple[bool, bool]:
        return (not self._finished and not self._stalled, self._ended)

    # ---- generation (device thread) ---------------------------------------

    def generate(self) -> None:
        model = self._cosy.model
        lookahead = int(model.flow.pre_lookahead_len)
        if self._decoder is None:
            self._decoder = SpeechTokenDecoder(
                self._cosy.llm,
                self._speaker.prompt_text,
                self._speaker.prompt_speech,
                sampling=self._cosy.settings.sampling,
                max_token_text_ratio=self._cosy.settings.max_token_text_ratio,
            )
            model.hift_cache_dict[self._key] = None
        try:
            self._feed()
            while not self.cancelled:
                hop = self._hop()
                if len(self._tokens) - self._offset >= hop + lookahead:
                    audio = self._audio(self._tokens[: self._offset + hop + lookahead], final=False)
                    self.emit(audio)
                    self._offset += hop
                    if not self.room():
                        return  # the next read() starts a job that goes on from here
                    continue
                if self._llm_done:
                    if self._tokens:
                        self.emit(self._audio(self._tokens, final=True))
                    self._finished = True
                    return
                token = self._decoder.step()
                if token is Step.NEED_TEXT:
                    with self.lock:
                        # Only this says "wait for text": push_text/end_input clear it.
                        self._stalled = not self._ids and not self._ended
                        if self._stalled:
                            return
                    self._feed()
                elif token is Step.DONE:
                    self._llm_done = True
                else:
                    assert isinstance(token, int)
                    self._tokens.append(token)
        finally:
            if self.cancelled or self._finished:
                self._release()

    def _feed(self) -> None:
        """Hand the decoder the text that has arrived, and the end of it."""
        assert self._decoder is not None
        with self.lock:
            ids = list(self._ids)
            self._ids.clear()
            ended = self._ended
        self._decoder.add_text(ids)
        if ended:
            self._decoder.end_text()

    def _release(self) -> None:
        """Drop this utterance's vocoder cache (on the device thread, or with no job running)."""
        model = self._cosy.model
        if model is not None:
            model.hift_cache_dict.pop(self._key, None)

    def _hop(self) -> int:
        """Tokens in this hop; the first is padded so the prompt and it end on a hop."""
        if self._offset:
            return TOKEN_HOP
        prompt = self._speaker.prompt_speech.shape[1]
        return TOKEN_HOP + (-prompt) % TOKEN_HOP

    def _audio(self, tokens: list[int], final: bool) -> FloatArray:
        speaker = self._speaker
        speech = self._cosy.model.token2wav(
            token=torch.tensor([tokens], dtype=torch.int32),
            prompt_token=speaker.prompt_speech,
            prompt_feat=speaker.prompt_feat,
            embedding=speaker.embedding,
            token_offset=self._offset,
            uuid=self._key,
            stream=True,
            finalize=final,
        )
        return np.asarray(speech.squeeze(0).float().cpu().numpy(), dtype=np.float32)

    async def aclose(self) -> None:
        self.cancel()
        if not self.running:
            self._release()  # else the running job releases it when it sees the cancel


def settings_from(spec: ModelSpec) -> CosyVoiceSettings:
    return settings_from_params(CosyVoiceSettings, spec, "CosyVoice")


class CosyVoiceFamily(TTSFamily):
    name = "cosyvoice"
    executor = ExecutorKind.DEVICE

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        names = ("cosyvoice2.yaml", "llm.pt", "flow.pt", "hift.pt", "spk2info.pt")
        folder = source_folder(spec, "CosyVoice", f"a CosyVoice 2 folder: {', '.join(names)}")
        settings = settings_from(spec)
        require_files("cosyvoice", *(folder / name for name in names))
        try:
            return _load(folder, settings, device)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise AdapterError(f"cosyvoice could not load {folder}: {exc}") from exc


def _load(folder: Any, settings: CosyVoiceSettings, device: str) -> CosyVoiceModel:
    from cosyvoice.cli.model import CosyVoice2Model
    from hyperpyyaml import load_hyperpyyaml

    qwen = folder / "CosyVoice-BlankEN"
    with open(folder / "cosyvoice2.yaml") as f:
        configs = load_hyperpyyaml(f, overrides={"qwen_pretrain_path": str(qwen)})
    fp16 = settings.fp16 and device.startswith("cuda")
    model = CosyVoice2Model(configs["llm"], configs["flow"], configs["hift"], fp16)
    model.device = torch.device(device)
    model.load(str(folder / "llm.pt"), str(folder / "flow.pt"), str(folder / "hift.pt"))
    # The packaged runtime's CosyVoice2Model keeps the flow and vocoder only (its other
    # user brings its own LLM), so the LLM is held and loaded here.
    llm = configs["llm"]
    llm.load_state_dict(torch.load(folder / "llm.pt", map_location=device), strict=True)
    llm.to(device).eval()
    if fp16:
        llm.half()
    info = torch.load(folder / "spk2info.pt", map_location=device)
    speakers = {str(name): Speaker.from_info(entry) for name, entry in info.items()}
    if not speakers:
        raise ValueError("spk2info.pt holds no speaker")
    cosy = CosyVoiceModel(
        model,
        llm,
        configs["get_tokenizer"](),
        speakers,
        settings,
        int(configs["sample_rate"]),
        device,
    )
    if settings.speaker:
        cosy.speaker_for(VoiceOptions())  # a misnamed speaker fails the load, not a session
    return cosy


__all__ = [
    "CosyVoiceFamily",
    "CosyVoiceModel",
    "CosyVoiceSettings",
    "Speaker",
    "SpeechTokenDecoder",
    "Step",
    "settings_from",
]
