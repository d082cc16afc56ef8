"""Worker configuration: precedence and errors a person can act on."""

from pathlib import Path

import pytest

from duplex_tts.cli import load_config, main
from duplex_tts.config import ConfigError


def test_defaults_match_the_design() -> None:
    cfg = load_config([])
    assert (cfg.port, cfg.metrics_port, cfg.adapters) == (7001, 9101, ["piper"])
    assert cfg.default_model == "piper-en-us-joe-medium"


def test_flags_override_yaml_override_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUPLEX_TTS_PORT", raising=False)
    path = tmp_path / "worker.yaml"
    path.write_text("port: 7005\nttl-ms: 1000\nadapters: [mock, piper]\nresident_cap: 2\n")
    cfg = load_config(["--config", str(path), "--port", "7009", "--preload-models", "a, b"])
    assert cfg.port == 7009  # flag
    assert cfg.ttl_ms == 1000  # yaml (dashes accepted)
    assert cfg.adapters == ["mock", "piper"]
    assert cfg.resident_cap == 2
    assert cfg.preload_models == ["a", "b"]
    assert cfg.max_parallel_loads == 1  # default


def test_environment_sits_between_yaml_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text("max_sessions: 3\n")
    monkeypatch.setenv("DUPLEX_TTS_MAX_SESSIONS", "5")
    assert load_config(["--config", str(path)]).max_sessions == 5
    assert load_config(["--config", str(path), "--max-sessions", "7"]).max_sessions == 7


@pytest.mark.parametrize(
    ("argv", "yaml_text", "message"),
    [
        (["--ttl-ms", "-1"], None, "ttl_ms: Input should be greater than or equal to 0 (got -1)"),
        (["--port", "70000"], None, "port: Input should be less than or equal to 65535"),
        ([], "resident_cap: lots\n", "resident_cap: Input should be a valid integer"),
        ([], "colour: red\n", "colour: Extra inputs are not permitted"),
        ([], "[1, 2]\n", "must hold a mapping"),
        ([], "port: [\n", "is not valid YAML"),
    ],
)
def test_invalid_config_names_the_field(
    tmp_path: Path, argv: list[str], yaml_text: str | None, message: str
) -> None:
    if yaml_text is not None:
        path = tmp_path / "w.yaml"
        path.write_text(yaml_text)
        argv = [*argv, "--config", str(path)]
    with pytest.raises(ConfigError, match=None) as err:
        load_config(argv)
    assert message in str(err.value)


def test_cli_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--max-parallel-loads", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("duplex-tts-worker: invalid configuration: max_parallel_loads:")


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(["--config", str(tmp_path / "nope.yaml")])
