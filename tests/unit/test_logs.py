"""JSON log lines: one object a line, plain-data extras kept, library objects dropped."""

from __future__ import annotations

import json
import logging

from duplex_protocol.logs import JsonFormatter


class Settings:
    """Stands for an object a library attaches to its records (kopf: its settings)."""


def test_a_record_becomes_one_json_object_with_its_plain_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "duplex_operator.election",
            "levelname": "INFO",
            "msg": "following %s",
            "args": ("op-a",),
            "lease": "duplex-operator-leader",
            "k8s_ref": {"kind": "TTSWorker", "name": "cpu"},
            "settings": Settings(),
        }
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "following op-a"
    assert entry["level"] == "info"
    assert entry["lease"] == "duplex-operator-leader"
    assert entry["k8s_ref"] == {"kind": "TTSWorker", "name": "cpu"}
    assert "settings" not in entry
