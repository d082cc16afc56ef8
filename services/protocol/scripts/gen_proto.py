"""Generate the Python stubs (messages, gRPC, .pyi types) for duplex's protos.

Usage: python services/protocol/scripts/gen_proto.py [OUT_DIR]

OUT_DIR defaults to services/protocol/src. The generated files are committed;
tests/unit/test_proto_stubs.py regenerates them into a temporary folder and
fails when the committed copies drift from the .proto.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent.parent
PROTO_ROOT = HERE / "proto"
# The proto's package is duplex.tts.v1, but the Python package that carries it is
# duplex_protocol.tts.v1: map the import path so generated imports resolve.
PROTOS = {"duplex_protocol/tts/v1": PROTO_ROOT / "duplex/tts/v1"}


def _plugin(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    return f"--plugin={name}={exe}"


def generate(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for virtual, physical in PROTOS.items():
        files = sorted(physical.glob("*.proto"))
        args = [
            "grpc_tools.protoc",
            f"-I{virtual}={physical}",
            f"-I{protoc_include()}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            _plugin("protoc-gen-mypy"),
            _plugin("protoc-gen-mypy_grpc"),
            f"--mypy_out={out_dir}",
            f"--mypy_grpc_out={out_dir}",
            *(str(f) for f in files),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {physical}")
        written.extend(sorted((out_dir / virtual).glob("*_pb2*")))
    return written


def protoc_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "src"
    for path in generate(target):
        print(path)
