"""The committed generated stubs match tts.proto (regenerate with `make proto`)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "services/protocol/scripts/gen_proto.py"
COMMITTED = ROOT / "services/protocol/src"


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_proto", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    fresh = gen.generate(tmp_path)
    assert {p.name for p in fresh} == {
        "tts_pb2.py",
        "tts_pb2.pyi",
        "tts_pb2_grpc.py",
        "tts_pb2_grpc.pyi",
    }
    for path in fresh:
        committed = COMMITTED / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run `make proto`"


def test_service_exposes_every_rpc_of_the_abi() -> None:
    from duplex_protocol.tts.v1 import tts_pb2

    service = tts_pb2.DESCRIPTOR.services_by_name["TTS"]
    assert service.full_name == "duplex.tts.v1.TTS"
    assert {m.name for m in service.methods} == {
        "StartSession",
        "Synthesize",
        "Control",
        "EndSession",
        "ListModels",
        "LoadModel",
        "UnloadModel",
        "GetCapabilities",
    }
    synthesize = service.methods_by_name["Synthesize"]
    assert synthesize.client_streaming
    assert synthesize.server_streaming
