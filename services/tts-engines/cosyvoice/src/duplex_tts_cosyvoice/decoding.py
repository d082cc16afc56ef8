"""CosyVoice 2's text-to-speech-token decoding as resumable steps, text streamed in.

CosyVoice 2's LLM (``Qwen2LM``) reads text and writes speech tokens interleaved:
``mix_ratio`` = (5, 15) means five text tokens, then up to fifteen speech
tokens, then a *fill* token that asks for the next five. A speaker's prompt
(its text and speech tokens) is interleaved the same way ahead of the reply.
Once the text has all arrived, the rest of it goes in with the task token and
the model speaks until end-of-speech.

Upstream drives this as a generator that pulls text from another generator,
so it blocks its thread whenever the text is late. ``SpeechTokenDecoder`` keeps
the same state explicitly and says ``NEED_TEXT`` instead, so one device thread
can serve many sessions and a late LLM reply never holds it. Every ``step()``
is at most one forward pass of the LLM. It uses the model's own modules
(embeddings, backbone, decoder head, sampling); nothing here does I/O.
"""

from __future__ import annotations

import enum
from typing import Any

import torch


class Step(enum.Enum):
    NEED_TEXT = "need_text"
    """No speech token can come before more text (or ``end_text()``)."""
    DONE = "done"
    """End of speech: the utterance is complete."""


class SpeechTokenDecoder:
    """One utterance's decoding state over a loaded ``Qwen2LM``."""

    @torch.inference_mode()
    def __init__(
        self,
        lm: Any,
        prompt_text: torch.Tensor,
        prompt_speech: torch.Tensor,
        sampling: int = 25,
        max_token_text_ratio: float = 20.0,
    ) -> None:
        self._lm = lm
        self._sampling = sampling
        self._max_ratio = max_token_text_ratio
        self._text_per_chunk, self._speech_per_chunk = (int(n) for n in lm.mix_ratio)
        self._eos = int(lm.speech_token_size)
        self._fill = self._eos + 2
        self._device = lm.llm_embedding.weight.device
        self._embed_text = lm.llm.model.model.embed_tokens
        sos = lm.llm_embedding.weight[lm.sos_eos].reshape(1, 1, -1)
        self._task = lm.llm_embedding.weight[lm.task_id].reshape(1, 1, -1)
        self._pending = sos  # embeddings not yet fed to the backbone
        self._text = self._embed(prompt_text)  # text embeddings not yet fed
        self._prompt_speech = (
            lm.speech_embedding(prompt_speech.to(self._device))
            if prompt_speech.shape[1]
            else sos[:, :0]
        )
        self._cache: Any = None
        self._seen = 0  # positions in the cache
        self._decoded: list[int] = []  # speech and fill tokens, for sampling's repetition window
        self._next_fill = -1
        self._awaiting_text = True  # before the first chunk, and after each fill token
        self._text_tokens = 0
        self._ended = False
        self._final = False
        self._done = False

    @property
    def speech_tokens(self) -> int:
        return sum(1 for token in self._decoded if token < self._eos)

    @torch.inference_mode()
    def add_text(self, token_ids: list[int]) -> None:
        """Append the reply's next text tokens."""
        if token_ids:
            ids = torch.tensor([token_ids], dtype=torch.int32, device=self._device)
            self._text = torch.concat([self._text, self._embed(ids)], dim=1)
            self._text_tokens += len(token_ids)

    def end_text(self) -> None:
        """The reply's text is complete."""
        self._ended = True

    @torch.inference_mode()
    def step(self) -> int | Step:
        """The next speech token, or why there is none now.

        One forward pass of the LLM, or two when a fill token is followed at once by
        text that has already arrived.
        """
        if self._done:
            return Step.DONE
        if not self._final:
            if not self._interleave_prompt():
                return self._wait_or_finish()
            if self._awaiting_text:
                if self._text.shape[1] < self._text_per_chunk:
                    return self._wait_or_finish()
                self._pending = torch.concat([self._pending, self._take_text()], dim=1)
                self._awaiting_text = False
        elif self.speech_tokens >= self._max_tokens():
            self._done = True  # a runaway model: stop at upstream's length limit
            return Step.DONE
        token = self._sample()
        if token == self._fill and not self._final:
            self._next_fill = len(self._decoded) + self._speech_per_chunk + 1
            self._decoded.append(token)
            self._awaiting_text = True
            return self.step()
        self._decoded.append(token)
        if token == self._eos and self._final:
            self._done = True
            return Step.DONE
        if token >= self._eos:
            raise ValueError(f"CosyVoice LLM produced special token {token} mid-speech")
        self._pending = self._lm.speech_embedding.weight[token].reshape(1, 1, -1)
        return token

    # ---- internals --------------------------------------------------------

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self._embed_text(ids.to(self._device))  # type: ignore[no-any-return]

    def _take_text(self) -> torch.Tensor:
        chunk, self._text = (
            self._text[:, : self._text_per_chunk],
            self._text[:, self._text_per_chunk :],
        )
        return chunk

    def _interleave_prompt(self) -> bool:
        """Feed the speaker prompt's speech tokens with text; True once all are in."""
        while self._prompt_speech.shape[1]:
            if self._text.shape[1] < self._text_per_chunk:
                return False
            speech = self._prompt_speech[:, : self._speech_per_chunk]
            self._prompt_speech = self._prompt_speech[:, self._speech_per_chunk :]
            self._pending = torch.concat([self._pending, self._take_text(), speech], dim=1)
            self._awaiting_text = False  # the prompt's speech continues into the reply's
        return True

    def _wait_or_finish(self) -> int | Step:
        if not self._ended:
            return Step.NEED_TEXT
        # All text is in: what is left of it, the task token, then speak to the end.
        self._final = True
        self._pending = torch.concat([self._pending, self._text, self._task], dim=1)
        self._text = self._text[:, :0]
        return self.step()

    def _max_tokens(self) -> int:
        return max(1, int(self._text_tokens * self._max_ratio))

    def _sample(self) -> int:
        lm = self._lm
        length = self._seen + self._pending.shape[1]
        # The backbone reads the causal mask's last row only: every position so far.
        visible = torch.ones((1, 1, length), device=self._device, dtype=torch.bool)
        hidden, self._cache = lm.llm.forward_one_step(
            self._pending, masks=visible, cache=self._cache
        )
        self._seen = length
        self._pending = self._pending[:, :0]
        if not self._final and len(self._decoded) == self._next_fill:
            return self._fill  # the fill token comes every mix_ratio[1] speech tokens
        logp = lm.llm_decoder(hidden[:, -1]).log_softmax(dim=-1).squeeze(dim=0)
        logp[self._eos + 1] = -float("inf")  # a training-only token
        if self._final:
            logp[self._fill] = -float("inf")  # no text is left to ask for
        # Mid-reply the model may not end: more text is coming.
        return int(lm.sampling_ids(logp, self._decoded, self._sampling, ignore_eos=not self._final))
