"""IdleRelease: working memory is given back once, after a quiet spell, never mid-speech."""

from __future__ import annotations

import asyncio

from duplex_tts.idle import IdleRelease


class Releases:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


async def test_released_once_after_the_last_utterance_goes_quiet() -> None:
    releases = Releases()
    idle = IdleRelease(releases, delay_s=0.05)
    idle.started()
    idle.started()
    idle.ended()
    await asyncio.sleep(0.1)
    assert releases.count == 0  # one utterance still speaks
    idle.ended()
    await asyncio.sleep(0.1)
    assert releases.count == 1
    await asyncio.sleep(0.1)
    assert releases.count == 1  # nothing spoken since: no second release


async def test_an_utterance_during_the_quiet_spell_cancels_the_release() -> None:
    releases = Releases()
    idle = IdleRelease(releases, delay_s=0.1)
    idle.started()
    idle.ended()
    await asyncio.sleep(0.05)
    idle.started()
    await asyncio.sleep(0.1)
    assert releases.count == 0
    idle.ended()
    await asyncio.sleep(0.15)
    assert releases.count == 1


async def test_zero_delay_disables_it_and_a_failed_release_is_survived() -> None:
    releases = Releases()
    idle = IdleRelease(releases, delay_s=0)
    idle.started()
    idle.ended()
    await asyncio.sleep(0.05)
    assert releases.count == 0

    async def broken() -> None:
        raise RuntimeError("no")

    failing = IdleRelease(broken, delay_s=0.01)
    failing.started()
    failing.ended()
    await asyncio.sleep(0.05)
    failing.started()  # still counting
    failing.close()
