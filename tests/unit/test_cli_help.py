"""Every console command's ``--help`` describes every flag and argument."""

from __future__ import annotations

import argparse

import pytest

from duplex_operator.cli import parser as operator_parser
from duplex_orchestrator.cli import orchestrator_parser
from duplex_orchestrator.duplex_command import duplex_parser
from duplex_tts.cli import parser as worker_parser


def _commands(
    name: str, parser: argparse.ArgumentParser
) -> list[tuple[str, argparse.ArgumentParser]]:
    """The parser and, for ``duplex up|say|talk``, each subcommand's own."""
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                found += _commands(f"{name} {sub}", subparser)
    return found


COMMANDS = [
    *_commands("duplex", duplex_parser()),
    *_commands("duplex-orchestrator", orchestrator_parser()),
    *_commands("duplex-tts-worker", worker_parser()),
    *_commands("duplex-operator", operator_parser()),
]


@pytest.mark.parametrize(("command", "parser"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_every_flag_has_a_description(command: str, parser: argparse.ArgumentParser) -> None:
    undescribed = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert undescribed == [], f"{command} --help lists {undescribed} with no description"


def test_duplex_up_help_reads_as_a_user_needs_it() -> None:
    up = dict(_commands("duplex", duplex_parser()))["duplex up"]
    text = " ".join(up.format_help().split())  # however the terminal wraps it
    for flag, words in (
        ("--port", "orchestrator HTTP port"),
        ("--worker-port", "worker gRPC port"),
        ("--voicepacks", "voicepack folder"),
        ("--model", "voice of new sessions"),
    ):
        assert flag in text
        assert words in text
