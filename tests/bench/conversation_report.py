"""What a conversation run measured, as text (``bench_conversation``): the table of
turns by mode, voice and speakers, the orchestrator's counts (``/metrics``), the
interruptions, and the targets."""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.bench.interruptions import render_interruptions


def counters(url: str) -> dict[str, float]:
    """The orchestrator's ``duplex_asr_speculations_total`` as ``"at/outcome": count``,
    ``duplex_turn_ends_total`` as ``"ended by": count``, ``duplex_reply_holds_total``
    as ``"first sound held/outcome": count`` and ``duplex_pitch_doubts_total`` as
    ``"pitch doubted"``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if family.name == "duplex_asr_speculations" and s.name.endswith("_total"):
                out[f"{s.labels['at']}/{s.labels['outcome']}"] = s.value
            elif family.name == "duplex_turn_ends" and s.name.endswith("_total"):
                out[f"ended by {s.labels['by']}"] = s.value
            elif family.name == "duplex_reply_holds" and s.name.endswith("_total"):
                out[f"first sound held/{s.labels['outcome']}"] = s.value
            elif family.name == "duplex_pitch_doubts" and s.name.endswith("_total"):
                out["pitch doubted"] = s.value
    return out


def _label(mode: str, row: dict[str, Any]) -> str:
    """The mode's name, and the one voice its users spoke in (``--voices``)."""
    return f"{mode}, {row['voice']}" if row.get("voice") else mode


def render(results: dict[str, Any]) -> str:
    lines = ["Conversations (WebSocket, Piper, Whisper base; ms from the user's last word)", ""]
    labels = [_label(mode, row) for mode, rows in results["modes"].items() for row in rows]
    width = max([30, *(len(label) for label in labels)])
    head = f"{'end of turn, VAD':<{width}} {'spk':>3} {'turns':>5} {'v2v p50':>8} {'v2v p95':>8}"
    lines.append(
        head + f" {'asr p50':>8} {'ended p50':>9} {'premature':>9} {'heard':>5} {'continued':>9}"
        f" {'no reply':>8}"
    )
    for mode, rows in results["modes"].items():
        for row in rows:
            v2v, asr = row["voice_to_voice_ms"] or {}, row["asr_ms"] or {}
            ended = row.get("end_of_turn_ms") or {}
            lines.append(
                f"{_label(mode, row):<{width}} {row['speakers']:>3} {row['turns']:>5} "
                f"{v2v.get('p50', float('nan')):>8.0f} {v2v.get('p95', float('nan')):>8.0f} "
                f"{asr.get('p50', float('nan')):>8.0f} {ended.get('p50', float('nan')):>9.0f} "
                f"{row['premature']:>9} {row.get('heard_early', 0):>5} "
                f"{row['continued']:>9} {row['unanswered']:>8}"
            )
    for mode, rows in results["modes"].items():
        for row in rows:
            counts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(row["counts"].items()) if v)
            lines.append(f"{_label(mode, row)}, {row['speakers']} speakers: {counts}")
            whole = row.get("complete_voice_to_voice_ms") or {}
            lines.append(
                f"  complete turns: v2v {whole.get('p50', float('nan')):.0f} / "
                f"{whole.get('p95', float('nan')):.0f} ms, "
                f"{row.get('complete_premature', 0)} premature"
            )
    for vad, barge in results["interruptions"].items():
        lines += render_interruptions(vad, barge)
    lines.append(
        "targets: 1 speaker p50 < 450 ms, p95 < 700 ms, no premature hesitation, no reply "
        "heard early; "
        "4 speakers p50 < 700 ms; barge-in p95 < 100 ms"
    )
    return "\n".join(lines)
