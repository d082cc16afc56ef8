"""What `duplex up` starts: the two children's command lines, and the settings of the
YAML files it passes on that its own flags decide (said, not silently dropped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from duplex_orchestrator.duplex_command import (
    duplex_parser,
    ignored_settings,
    orchestrator_command,
    worker_command,
)


def _flags(command: list[str]) -> dict[str, list[str]]:
    """Each ``--flag``'s values in a command line (the program and its module left out)."""
    flags: dict[str, list[str]] = {}
    name = ""
    for word in command[3:]:
        if word.startswith("--"):
            name = word
            flags.setdefault(name, [])
        else:
            flags[name].append(word)
    return flags


def test_by_default_the_orchestrator_is_the_echo_bridge_on_loopback_in_dev_mode() -> None:
    flags = _flags(orchestrator_command(duplex_parser().parse_args(["up"])))
    assert flags == {
        "--dev": [],
        "--host": ["127.0.0.1"],
        "--port": ["8080"],
        "--transport": ["web"],
        "--registry": ["static"],
        "--worker": ["127.0.0.1:7001"],
        "--default-model": ["piper-en-us-joe-medium"],
        "--rtc-host": ["127.0.0.1"],
        "--rtc-peer-network": ["127.0.0.1"],
    }


def test_an_llm_and_settings_files_reach_the_children() -> None:
    args = duplex_parser().parse_args(
        [
            "up",
            "--llm-url",
            "http://127.0.0.1:11434/v1",
            "--llm-model",
            "llama3.2",
            "--config",
            "orchestrator.yaml",
            "--worker-config",
            "worker.yaml",
        ]
    )
    orchestrator = _flags(orchestrator_command(args))
    assert orchestrator["--llm-url"] == ["http://127.0.0.1:11434/v1"]
    assert orchestrator["--llm-model"] == ["llama3.2"]
    assert orchestrator["--config"] == ["orchestrator.yaml"]
    assert _flags(worker_command(args))["--config"] == ["worker.yaml"]


def test_the_worker_listens_on_loopback_with_the_voices_asked_for() -> None:
    args = duplex_parser().parse_args(
        ["up", "--worker-port", "7100", "--families", "piper", "--voicepacks", "packs"]
    )
    flags = _flags(worker_command(args))
    assert "--config" not in flags
    assert flags["--host"] == ["127.0.0.1"]
    assert flags["--port"] == ["7100"]
    assert flags["--adapter"] == ["piper"]
    assert flags["--voicepacks"] == [str(Path("packs"))]


OWNS = {"port": "--port", "default_model": "--model"}


@pytest.mark.parametrize(
    ("settings", "given", "ignored"),
    [
        ({"llm_instructions": "Take orders.", "vad_end_ms": 900}, {}, []),
        ({"port": 9000, "llm_instructions": "x"}, {}, ["port (duplex up's --port)"]),
        ({"default-model": "mock"}, {}, ["default_model (duplex up's --model)"]),
        ({"llm_url": "http://a/v1"}, {}, []),
        ({"llm_url": "http://a/v1"}, {"llm_url": "--llm-url"}, ["llm_url (duplex up's --llm-url)"]),
        (["port"], {}, []),  # not settings at all: the child says so
        (None, {}, []),
    ],
    ids=["none of its own", "its port", "dashed name", "an llm", "an llm flag", "a list", "empty"],
)
def test_settings_duplex_up_decides_are_named(
    settings: object, given: dict[str, str], ignored: list[str]
) -> None:
    assert ignored_settings(settings, OWNS, given) == ignored
