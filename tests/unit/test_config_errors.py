"""Every invalid setting in one line, and no secret echoed: the services' config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from duplex_orchestrator.config import ConfigError as OrchestratorConfigError
from duplex_orchestrator.config import build_config
from duplex_protocol.config_errors import describe
from duplex_tts.cli import load_config
from duplex_tts.config import ConfigError as WorkerConfigError


@pytest.mark.parametrize(
    ("errors", "line"),
    [
        (
            [{"loc": ("port",), "msg": "Input should be a valid integer", "input": "abc"}],
            "port: Input should be a valid integer (got 'abc')",
        ),
        (
            [{"loc": ("a", 0), "msg": "bad", "input": 1}, {"loc": ("b",), "msg": "worse"}],
            "a.0: bad (got 1); b: worse",
        ),
        (
            [{"loc": (), "msg": "Value error, set --api-key", "input": {"api_key": "s3cret"}}],
            "config: set --api-key",
        ),
        (
            [{"loc": ("livekit_api_secret",), "msg": "Input should be a valid string", "input": 7}],
            "livekit_api_secret: Input should be a valid string",
        ),
        ([{"loc": ("api_key",), "msg": "too short", "input": "s3cret"}], "api_key: too short"),
    ],
)
def test_each_error_is_named_and_secrets_are_not_shown(
    errors: list[dict[str, object]], line: str
) -> None:
    assert describe(errors) == line


def test_a_long_value_is_cut_short() -> None:
    line = describe([{"loc": ("adapters",), "msg": "bad", "input": ["piper"] * 40}])
    shown = line.removeprefix("adapters: bad (got ").removesuffix(")")
    assert shown.startswith("['piper', 'piper',")
    assert shown.endswith("…")
    assert len(shown) == 80


def test_a_voicepack_problem_shows_no_value() -> None:
    """A voicepack's fields are logged as they are: a source URL may carry a token."""
    errors = [{"loc": ("source", "uri"), "msg": "bad", "input": "s3://b/m?X-Amz-Signature=x"}]
    assert describe(errors, root="metadata", show_input=False) == "source.uri: bad"


def test_the_orchestrator_names_every_invalid_setting_at_once(tmp_path: Path) -> None:
    """It used to name only the first: a config file fixed one error per start."""
    path = tmp_path / "o.yaml"
    path.write_text("port: abc\nend_of_turn_pause_ms: -5\napi_key: 12345\n")
    with pytest.raises(OrchestratorConfigError) as err:
        build_config({"dev": True}, path)
    message = str(err.value)
    assert "port: Input should be a valid integer" in message
    assert "end_of_turn_pause_ms: Input should be greater than or equal to 60" in message
    assert "api_key: Input should be a valid string" in message
    assert "12345" not in message
    assert "\n" not in message


def test_settings_out_of_order_are_all_named_with_the_defaults_they_meet() -> None:
    """A pause of 2 s is longer than the default silence and both doubts: the check
    used to stop at the first, and to show that default as "None"."""
    with pytest.raises(OrchestratorConfigError) as err:
        build_config({"end_of_turn_pause_ms": 2000, "ice_servers": "stun.example.org"})
    message = str(err.value)
    assert "end_of_turn_pause_ms (2000) must be shorter than vad_end_ms (1000, the default)" in (
        message
    )
    assert "end_of_turn_doubt_ms (500) must be longer than end_of_turn_pause_ms" in message
    assert "end_of_turn_statement_doubt_ms (700) must be longer than" in message
    assert "api_key: set --api-key" in message  # not in dev mode
    assert "ice_servers: 'stun.example.org' must start with stun:" in message
    assert "None" not in message
    with pytest.raises(OrchestratorConfigError, match=r"vad_end_ms \(900\), the silence"):
        build_config({"dev": True, "end_of_turn_pause_ms": 950, "vad_end_ms": 900})


def test_the_worker_names_every_invalid_setting_at_once(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("port: 70000\nresident_cap: lots\n")
    with pytest.raises(WorkerConfigError) as err:
        load_config(["--config", str(path)])
    message = str(err.value)
    assert "port: Input should be less than or equal to 65535 (got 70000)" in message
    assert "resident_cap: Input should be a valid integer" in message
