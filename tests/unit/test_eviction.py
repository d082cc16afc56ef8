"""Eviction decisions: TTL with min residency, LRU under a resident cap, pins and references."""

import itertools

import pytest

from duplex_tts.eviction import (
    EvictionPolicy,
    Residency,
    evictable,
    make_room,
    next_check,
    ttl_expired,
)

NOW = 1000.0


def model(
    mid: str,
    *,
    loaded: float = 0.0,
    used: float = 0.0,
    refs: int = 0,
    pinned: bool = False,
    loading: bool = False,
) -> Residency:
    return Residency(
        mid, loaded_at=loaded, last_used=used, refs=refs, pinned=pinned, loading=loading
    )


@pytest.mark.parametrize(
    ("refs", "pinned", "loading", "age", "expected"),
    [
        (refs, pinned, loading, age, refs == 0 and not pinned and not loading and age >= 60)
        for refs, pinned, loading, age in itertools.product(
            (0, 1, 3), (False, True), (False, True), (0, 59.9, 60, 500)
        )
    ],
)
def test_evictable_needs_no_refs_no_pin_not_loading_and_min_residency(
    refs: int, pinned: bool, loading: bool, age: float, expected: bool
) -> None:
    policy = EvictionPolicy(ttl_s=10, min_residency_s=60)
    m = model("a", loaded=NOW - age, refs=refs, pinned=pinned, loading=loading)
    assert evictable(m, policy, NOW) is expected


def test_ttl_expires_idle_models_least_recently_used_first() -> None:
    policy = EvictionPolicy(ttl_s=30, min_residency_s=0)
    models = [
        model("fresh", used=NOW - 5),
        model("old", used=NOW - 100),
        model("older", used=NOW - 200),
        model("exact", used=NOW - 30),
        model("busy", used=NOW - 500, refs=1),
        model("pinned", used=NOW - 500, pinned=True),
    ]
    assert ttl_expired(models, policy, NOW) == ["older", "old", "exact"]


def test_ttl_waits_for_min_residency() -> None:
    policy = EvictionPolicy(ttl_s=1, min_residency_s=120)
    assert ttl_expired([model("a", loaded=NOW - 60, used=NOW - 60)], policy, NOW) == []
    assert ttl_expired([model("a", loaded=NOW - 120, used=NOW - 60)], policy, NOW) == ["a"]


def test_no_ttl_means_never_expire() -> None:
    policy = EvictionPolicy(ttl_s=None)
    assert ttl_expired([model("a", used=0)], policy, NOW) == []
    assert next_check([model("a")], policy, NOW) is None


@pytest.mark.parametrize(
    ("cap", "resident", "expected"),
    [
        (0, 10, []),  # unlimited
        (3, 0, []),
        (3, 2, []),
        (3, 3, ["m0"]),
        (3, 4, ["m0", "m1"]),
        (1, 1, ["m0"]),
    ],
)
def test_make_room_evicts_lru_to_fit_one_more(cap: int, resident: int, expected: list[str]) -> None:
    policy = EvictionPolicy(resident_cap=cap)
    models = [model(f"m{i}", used=NOW - 100 + i) for i in range(resident)]
    assert make_room(models, policy, NOW) == expected


def test_make_room_skips_models_in_use_pinned_loading_or_too_young() -> None:
    policy = EvictionPolicy(resident_cap=5, min_residency_s=10)
    models = [
        model("in-use", used=1, refs=2),
        model("pinned", used=2, pinned=True),
        model("loading", used=3, loading=True),
        model("young", loaded=NOW - 1, used=4),
        model("idle", used=5),
    ]
    assert make_room(models, policy, NOW) == ["idle"]


def test_make_room_reports_no_capacity() -> None:
    policy = EvictionPolicy(resident_cap=2)
    models = [model("a", refs=1), model("b", pinned=True)]
    assert make_room(models, policy, NOW) is None
    assert make_room(models, policy, NOW, incoming=0) == []


def test_next_check_is_the_earliest_possible_expiry() -> None:
    policy = EvictionPolicy(ttl_s=30, min_residency_s=50)
    models = [
        model("a", loaded=NOW - 10, used=NOW - 29),  # residency ends in 40 s
        model("b", loaded=NOW - 100, used=NOW - 20),  # ttl ends in 10 s
        model("c", loaded=NOW - 100, used=NOW - 100, refs=1),  # held: not waited for
    ]
    assert next_check(models, policy, NOW) == pytest.approx(10)
    assert next_check([model("c", refs=1)], policy, NOW) is None
    assert next_check([model("d", used=NOW - 999, loaded=0)], policy, NOW) == 0.0


def test_the_kept_default_is_never_ttl_evicted_and_gives_way_last_under_the_cap() -> None:
    policy = EvictionPolicy(ttl_s=10, min_residency_s=0, resident_cap=2)
    default = Residency("default", loaded_at=0, last_used=0, kept=True)
    other = Residency("other", loaded_at=0, last_used=900)
    assert ttl_expired([default, other], policy, NOW) == ["other"]
    assert next_check([default], policy, NOW) is None
    # The default is the least recently used, yet the other model goes first ...
    assert make_room([default, other], policy, NOW) == ["other"]
    # ... and the default goes only when nothing else can.
    held = Residency("other", loaded_at=0, last_used=900, refs=1)
    assert make_room([default, held], policy, NOW) == ["default"]
    cap_one = EvictionPolicy(ttl_s=10, min_residency_s=0, resident_cap=1)
    assert make_room([default], cap_one, NOW) == ["default"]
