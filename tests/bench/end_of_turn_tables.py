"""The end-of-turn bench's tables: its rows tallied per kind and set, and rendered.

Pure: rows in (``bench_end_of_turn.judged``), counts and text out.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from duplex_orchestrator.endpoint import final_mark
from tests.bench.bench_conversation import PAUSE_S as HESITATION_S


def tally(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per kind and split: the verdicts, and how often each judge alone said complete."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        group = out.setdefault(
            f"{row['kind']}/{row['split']}",
            {
                "n": 0,
                "verdicts": Counter(),
                "rules_complete": 0,
                "sure_complete": 0,
                "words_complete": 0,
                "smart_turn_complete": 0,
                "cut_at_hesitation": 0,
                "pitch_doubted": 0,
                "wait_ms": 0.0,
                "first_pitch_doubted": 0,
                "first_cut_at_hesitation": 0,
                "first_wait_ms": 0.0,
            },
        )
        group["n"] += 1
        group["verdicts"][row["verdict"]] += 1
        group["rules_complete"] += row["rules_complete"]
        group["sure_complete"] += row["sure_complete"]
        group["words_complete"] += row["words_complete"]
        group["smart_turn_complete"] += row["smart_turn"] >= 0.5
        group["cut_at_hesitation"] += row["wait_ms"] <= HESITATION_S * 1000
        group["pitch_doubted"] += row["verdict"] != row["verdict_without_pitch"]
        group["wait_ms"] += row["wait_ms"]
        # The same for a user's first statements, judged against the first usual fall.
        group["first_pitch_doubted"] += row["verdict_first"] != row["verdict_without_pitch"]
        group["first_cut_at_hesitation"] += row["wait_ms_first"] <= HESITATION_S * 1000
        group["first_wait_ms"] += row["wait_ms_first"]
    for group in out.values():
        group["verdicts"] = dict(group["verdicts"])
        group["wait_ms"] = round(group["wait_ms"] / group["n"])
        group["first_wait_ms"] = round(group["first_wait_ms"] / group["n"])
    return out


THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def _count_below(
    values: list[tuple[str, float]], thresholds: tuple[float, ...]
) -> dict[str, dict[str, int]]:
    """Per group of (group, value) pairs: how many, and how many below each threshold."""
    out: dict[str, dict[str, int]] = {}
    for name, value in values:
        group = out.setdefault(name, {"n": 0})
        group["n"] += 1
        for threshold in thresholds:
            group[str(threshold)] = group.get(str(threshold), 0) + (value < threshold)
    return dict(sorted(out.items()))


def doubts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per kind and last mark ("?" or "."), over the clips whose words the rules call
    complete: how many, and how many Whisper doubts (``ends_here`` below each of
    ``THRESHOLDS``). Doubting an unfinished phrase saves the user from being
    cut off; doubting a complete one makes its answer wait: a question for the full
    silence (``question_end``), a statement for the doubt's (``statement_end``)."""
    values = [
        (f"{row['kind']} {final_mark(row['heard'])}", row["ends_here"])
        for row in rows
        if row["rules_complete"]
        and final_mark(row["heard"]) in ("?", ".")
        and row["ends_here"] is not None
    ]
    return _count_below(values, THRESHOLDS)


LAST_WORD_THRESHOLDS = (0.04, 0.06, 0.08, 0.1, 0.12, 0.16)


def unheard(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per kind, over the clips whose words read complete to the rules and Whisper's
    ``ends_here``: how many, and how many have less sound under their last word
    (``last_word_sound_s``) than each of ``LAST_WORD_THRESHOLDS``. Fewer than that
    under an unfinished phrase's last word is a word Whisper added (its completion)."""
    values = [
        (row["kind"], row["last_word_sound_s"])
        for row in rows
        if row["sure_complete"] and row["last_word_sound_s"] is not None
    ]
    return _count_below(values, LAST_WORD_THRESHOLDS)


def _below_table(
    title: str, first: str, groups: dict[str, dict[str, int]], thresholds: tuple[float, ...]
) -> list[str]:
    """Lines of a table: per group, its clips and how many fall below each threshold."""
    lines = ["", *title.splitlines()]
    lines.append(f"{first:<26} {'n':>4} " + " ".join(f"{t:>5}" for t in thresholds))
    for name, by in groups.items():
        cells = " ".join(f"{by.get(str(t), 0):>5}" for t in thresholds)
        lines.append(f"{name:<26} {by['n']:>4} {cells}")
    return lines


def render(results: dict[str, Any]) -> str:
    lines = [
        "End of turn at a 200 ms pause (transcript+smart-turn)",
        "",
        f"{'phrases':<24} {'n':>4} {'complete':>9} {'doubted':>8} {'incomplete':>11}"
        f" {'rules: complete':>16} {'+ Whisper sure':>15} {'+ last word heard':>18}"
        f" {'Smart Turn: complete':>21} {'pitch: doubted':>15} {'cut at 0.6 s':>13}"
        f" {'wait ms':>8}",
    ]
    for name, group in results["tally"].items():
        v = group["verdicts"]
        lines.append(
            f"{name:<24} {group['n']:>4} {v.get('complete', 0):>9} {v.get('doubted', 0):>8}"
            f" {v.get('incomplete', 0):>11} {group['rules_complete']:>16}"
            f" {group['sure_complete']:>15} {group['words_complete']:>18}"
            f" {group['smart_turn_complete']:>21} {group['pitch_doubted']:>15}"
            f" {group['cut_at_hesitation']:>13}"
            f" {group['wait_ms']:>8}"
        )
    lines += [
        "",
        "A user's first statements (their usual end not known yet: the first usual fall)",
        f"{'phrases':<24} {'n':>4} {'pitch: doubted':>15} {'cut at 0.6 s':>13} {'wait ms':>8}",
    ]
    for name, group in results["tally"].items():
        lines.append(
            f"{name:<24} {group['n']:>4} {group['first_pitch_doubted']:>15}"
            f" {group['first_cut_at_hesitation']:>13} {group['first_wait_ms']:>8}"
        )
    lines += _below_table(
        "Whisper's doubt, where the rules read complete: clips, and how many have its\n"
        "probability of a sentence end below each threshold (a question below 0.85 waits\n"
        "for the full silence, a statement below 0.75 for a statement's doubt)",
        "phrases, last mark", results["doubts"], THRESHOLDS,
    )  # fmt: skip
    lines += _below_table(
        "Sound under the last word, where the rules and Whisper read complete: clips,\n"
        "and how many have less than each threshold (s) under their last word",
        "phrases", results["unheard"], LAST_WORD_THRESHOLDS,
    )  # fmt: skip
    lines += [
        "",
        "unfinished phrases the rules took for complete (alone / cut from the whole /",
        "with a filler, cut from the whole),",
        "with Whisper's probability of a sentence end there and the sound under the",
        "last word (* held back by either):",
    ]
    for row in results["rows"]:
        if row["kind"] != "complete" and row["rules_complete"]:
            how = row["kind"].removeprefix("unfinished-")
            sure = "   -  " if row["ends_here"] is None else f"{row['ends_here']:.2f}"
            under = row["last_word_sound_s"]
            heard = "   -  " if under is None else f"{under:+.2f}"
            held = " " if row["words_complete"] else "*"
            lines.append(
                f"  {row['split']:<5} {how:<5} {row['voice'][:20]:<20} {sure} {heard}{held} "
                f"{row['heard']!r}"
            )
    recorded = [r for r in results["rows"] if r["split"] == "recorded" and r["kind"] == "complete"]
    if recorded:
        lines += ["", "people's recordings, whole: the verdict at the pause, Smart Turn, heard"]
        for row in recorded:
            lines.append(
                f"  {row['voice'][:12]:<12} {row['verdict']:<10} {row['smart_turn']:.2f} "
                f"{row['heard']!r}"
            )
    return "\n".join(lines)
