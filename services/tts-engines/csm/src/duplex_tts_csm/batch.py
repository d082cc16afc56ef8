"""One batched generation for the clauses waiting on one CSM base.

Every stream on a base (the base's own voice and its LoRA voices) joins the
base's ``ClauseBatcher``. When a stream's job reaches the device thread it
takes its next clause and, with it, the next clause of every other stream on
the base that is waiting, has room and samples the same way: they run as
the rows of one ``generate`` (left-padded prompts, one LoRA adapter name per
row), and each step's frame of codes goes to its row's stream and decoder.
A row that reaches its end-of-audio frame is flushed at once; a cancelled
row is dropped; generation stops early once no row is left. A row's context
segments (text, then its audio as placeholder tokens that transformers fills
with the codec's codes of ``input_values``) come before its clause.

A clause that arrives while a batch runs joins the next one: transformers'
``generate`` takes no new rows mid-way.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from prometheus_client import Histogram
from transformers.generation.streamers import BaseStreamer

from duplex_tts.tracing import phase
from duplex_tts_csm.codec import ChunkedDecoder

if TYPE_CHECKING:
    from duplex_tts_csm import CsmModel
    from duplex_tts_csm.engine import CsmStream


BATCH_ROWS = Histogram(
    "duplex_tts_csm_batch_rows",
    "Clauses generated together in one CSM generation (sessions batched on one base)",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
)


class Cancelled(Exception):
    """Raised inside ``generate`` (from the streamer) to stop it within a step."""


Segment = tuple[str, npt.NDArray[np.float32]]
"""Context: what was said (text) and how (audio at the model's rate, whole frames)."""


@dataclass
class ClauseJob:
    """One row of a batch: a stream's clause and the context it is spoken after."""

    stream: CsmStream
    text: str
    context: list[Segment]


@dataclass
class _Row:
    job: ClauseJob
    decoder: ChunkedDecoder
    done: bool = False
    audio: list[npt.NDArray[np.float32]] | None = None

    def emit(self, chunk: npt.NDArray[np.float32] | None) -> None:
        self.job.stream.emit(chunk)
        if chunk is not None and self.audio is not None:
            self.audio.append(chunk)

    def finish(self) -> None:
        """The clause is complete: flush it and keep it as context."""
        self.done = True
        self.emit(self.decoder.flush())
        if self.audio:
            self.job.stream.remember(self.job.text, np.concatenate(self.audio))


class _BatchStreamer(BaseStreamer):
    """Receives each step's codes (batch, codebooks) and hands every row its audio."""

    def __init__(self, rows: list[_Row], eos: int) -> None:
        self._rows = rows
        self._eos = eos
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        frames = value.reshape(len(self._rows), -1)
        for row, frame in zip(self._rows, frames, strict=True):
            stream = row.job.stream
            if row.done:
                continue
            if stream.cancelled:
                row.done = True
            elif bool((frame[:-1] == self._eos).all()):
                row.finish()  # the end-of-audio frame is not audio
            else:
                stream.frames_generated += 1
                row.emit(row.decoder.push(frame))
        if all(row.done for row in self._rows):
            raise Cancelled  # nothing left to generate for: stop within this step

    def end(self) -> None:  # the frame limit: speak what the rows have
        for row in self._rows:
            if not row.done:
                row.finish()


class ClauseBatcher:
    def __init__(self, base: CsmModel, max_batch: int) -> None:
        self._base = base
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._streams: list[CsmStream] = []
        self.recent_sizes: collections.deque[int] = collections.deque(maxlen=64)
        """Rows of the latest batches, newest last."""

    def join(self, stream: CsmStream) -> None:
        with self._lock:
            self._streams.append(stream)

    def leave(self, stream: CsmStream) -> None:
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)

    def speak(self, lead: CsmStream) -> bool:
        """On the device thread: generate ``lead``'s next clause with every other
        stream's that can join it. False when ``lead`` had no clause."""
        first = lead.take()
        if first is None:
            return False
        jobs = [first]
        with self._lock:
            others = [s for s in self._streams if s is not lead]
        for other in others:
            if len(jobs) >= self.max_batch:
                break
            if other.voice.settings.sampling == lead.voice.settings.sampling and other.room():
                job = other.take()
                if job is not None:
                    jobs.append(job)
        self.recent_sizes.append(len(jobs))
        BATCH_ROWS.observe(len(jobs))
        try:
            self._generate(jobs)
        except Cancelled:
            pass
        except Exception as exc:
            for job in jobs[1:]:
                job.stream.fail(exc)
            raise
        finally:
            for job in jobs:
                job.stream.finish(wake=job is not first)
        return True

    def _generate(self, jobs: list[ClauseJob]) -> None:
        base = self._base
        settings = jobs[0].stream.voice.settings
        prompts = [self._prompt(job) for job in jobs]
        ids, mask = _left_padded([ids for ids, _ in prompts], base.filler_token_id)
        rows: list[_Row] = []
        for job in jobs:
            voice = job.stream.voice.settings
            kept: list[npt.NDArray[np.float32]] | None = [] if voice.context_clauses else None
            rows.append(_Row(job, base.decoder(voice), audio=kept))  # audio: next context
        sampling: dict[str, Any] = {
            "do_sample": settings.do_sample,
            "depth_decoder_do_sample": settings.do_sample,
        }
        if settings.do_sample:
            sampling["temperature"] = settings.temperature
            sampling["depth_decoder_temperature"] = settings.temperature
        adapters = [job.stream.voice.adapter for job in jobs]
        with torch.inference_mode(), phase("csm.generate"):
            base.host.generator.generate(
                input_ids=ids.to(base.device),
                attention_mask=mask.to(base.device),
                max_new_tokens=settings.max_frames_per_clause,
                streamer=_BatchStreamer(rows, base.codebook_eos),
                **_audio_inputs([audio for _, audio in prompts], base.device, base.dtype),
                **sampling,
                **base.host.generate_kwargs(adapters),
            )

    def _prompt(self, job: ClauseJob) -> tuple[torch.Tensor, list[npt.NDArray[np.float32]]]:
        """A row's token ids (context segments, then the clause) and its context audio."""
        base, speaker = self._base, job.stream.speaker
        frame = job.stream.voice.samples_per_frame
        parts: list[torch.Tensor] = []
        for text, audio in job.context:
            frames = audio.size // frame
            parts.append(base.prompt(text, speaker))
            parts.append(torch.full((frames,), base.audio_token_id, dtype=torch.long))
            parts.append(torch.tensor([base.audio_eos_token_id], dtype=torch.long))
        parts.append(base.prompt(job.text, speaker))
        return torch.cat(parts), [audio for _, audio in job.context]


def _left_padded(prompts: list[torch.Tensor], filler: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded on the left so every row ends together."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), filler, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = prompt
        mask[i, width - len(prompt) :] = 1
    return ids, mask


def _audio_inputs(
    rows: list[list[npt.NDArray[np.float32]]], device: str, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """``input_values`` (rows' context audio, concatenated) and ``input_values_cutoffs``
    (where each segment ends; -1 pads), as transformers' CSM takes them; none without audio."""
    if not any(rows):
        return {}
    longest = max(sum(a.size for a in row) for row in rows)
    most = max(len(row) for row in rows)
    values = torch.zeros((len(rows), 1, longest), dtype=torch.float32)
    cutoffs = torch.full((len(rows), most), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        end = 0
        for j, audio in enumerate(row):
            values[i, 0, end : end + audio.size] = torch.from_numpy(audio)
            end += audio.size
            cutoffs[i, j] = end
    # The codec encodes input_values in the model's dtype (bfloat16 on a GPU).
    return {
        "input_values": values.to(device, dtype),
        "input_values_cutoffs": cutoffs.to(device),
    }
