"""The CPUs a process may use, and the pools sized by them: a container's CPU limit
(its cgroup's quota) caps what the machine's core count would give.

Each cgroup is a folder written here as a container would see its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from duplex_protocol.cores import (
    cap_torch_threads,
    cgroup_quota,
    quota_cores,
    quota_limited_cores,
    usable_cores,
)


@pytest.mark.parametrize(
    ("quota", "period", "granted"),
    [
        ("200000 100000", "", 2.0),  # cgroup v2's cpu.max: a 2-CPU limit
        ("150000 100000\n", "", 1.5),
        ("max 100000", "", None),  # no limit
        ("50000", "100000", 0.5),  # v1's quota and period
        ("-1", "100000", None),  # v1: no limit
        ("0 100000", "", None),
        ("garbage", "", None),
        ("", "", None),
    ],
)
def test_a_quota_reads_as_the_cpus_it_grants(
    quota: str, period: str, granted: float | None
) -> None:
    assert quota_cores(quota, period) == granted


V1_UNLIMITED = {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}


def cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "affinity", "limited", "usable"),
    [
        ({"cpu.max": "200000 100000\n"}, 64, 2, 2),  # a 2-CPU pod on a 64-core node
        ({"cpu.max": "250000 100000\n"}, 64, 2, 2),  # 2.5: a third thread is throttled
        ({"cpu.max": "50000 100000\n"}, 64, 1, 1),  # half a CPU: still one
        ({"cpu.max": "max 100000\n"}, 64, None, 64),  # no limit: the cpuset
        ({"cpu.max": "800000 100000\n"}, 4, None, 4),  # a quota above the cpuset
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 16, 3, 3),
        (V1_UNLIMITED, 16, None, 16),
        ({}, 8, None, 8),  # no cgroup files (not Linux, or not mounted)
    ],
)
def test_the_usable_cores_are_the_cpuset_capped_by_the_quota(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    affinity: int,
    limited: int | None,
    usable: int,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
    root = cgroup(tmp_path, files)
    assert quota_limited_cores(root) == limited
    assert usable_cores(root) == usable


def test_without_its_own_cgroup_namespace_the_process_finds_its_folder(tmp_path: Path) -> None:
    root = cgroup(tmp_path / "fs", {"kubepods/pod1/c1/cpu.max": "300000 100000\n"})
    own = tmp_path / "self-cgroup"
    own.write_text("0::/kubepods/pod1/c1\n")
    assert cgroup_quota(root, own) == 3.0
    own.write_text("0::/\n")  # its namespace's root: nothing more to find
    assert cgroup_quota(root, own) is None
    assert cgroup_quota(root, tmp_path / "gone") is None


def test_the_v2_file_is_read_before_the_v1_folders(tmp_path: Path) -> None:
    root = cgroup(
        tmp_path,
        {
            "cpu.max": "100000 100000",
            "cpu/cpu.cfs_quota_us": "400000",
            "cpu/cpu.cfs_period_us": "100000",
        },
    )
    assert cgroup_quota(root) == 1.0


def test_whisper_workers_and_threads_follow_the_usable_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from duplex_orchestrator import asr

    for usable, workers in [(1, 1), (2, 2), (4, 4), (16, 8), (64, 32)]:
        monkeypatch.setattr(asr, "usable_cores", lambda usable=usable: usable)
        assert asr.default_workers() == workers


def test_a_workers_synthesis_threads_follow_the_usable_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from duplex_tts import config

    monkeypatch.setattr(config, "usable_cores", lambda: 2)
    assert config.WorkerConfig().synth_threads == 2
    monkeypatch.setattr(config, "usable_cores", lambda: 200)
    assert config.WorkerConfig().synth_threads == 64  # the field's own ceiling


def test_onnxruntime_keeps_its_default_threads_unless_a_quota_grants_fewer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from duplex_tts.adapters import onnx_arena

    monkeypatch.setattr(onnx_arena, "quota_limited_cores", lambda: None)
    assert onnx_arena.cpu_session_options().intra_op_num_threads == 0  # its default
    assert onnx_arena.cpu_session_options(3).intra_op_num_threads == 3
    monkeypatch.setattr(onnx_arena, "quota_limited_cores", lambda: 2)
    assert onnx_arena.cpu_session_options().intra_op_num_threads == 2
    assert onnx_arena.cpu_session_options(1).intra_op_num_threads == 1  # asked for: kept


class Torch:
    def __init__(self, threads: int) -> None:
        self.threads = threads

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, threads: int) -> None:
        self.threads = threads


def test_torch_threads_are_capped_by_a_quota_once_an_engine_imported_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    limited = cgroup(tmp_path / "limited", {"cpu.max": "200000 100000"})
    free = cgroup(tmp_path / "free", {"cpu.max": "max 100000"})
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert cap_torch_threads(limited) is None  # never imported: nothing to set
    torch = Torch(32)
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert cap_torch_threads(free) is None
    assert torch.threads == 32  # no limit: torch's own default stands
    assert cap_torch_threads(limited) == 2
    assert torch.threads == 2
    torch.threads = 1
    assert cap_torch_threads(limited) is None
    assert torch.threads == 1  # never raised
