"""The demo corpus: real packaged content, a ladder, byte-identical rebuilds, a valid manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tinyvmaf.corpus.demo import CorpusError, build_demo_corpus, demo_ladder, demo_sources
from tinyvmaf.corpus.manifest import read_manifest
from tinyvmaf.media.ffmpeg import resolve_ffmpeg
from tinyvmaf.media.video import probe


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_demo_spec_meets_the_corpus_brief() -> None:
    sources, ladder = demo_sources(), demo_ladder()
    assert len(sources) >= 10
    assert {s.kind for s in sources} == {"natural", "still", "synthetic"}
    assert len(ladder) >= 7
    names = " ".join(h.name for h in ladder)
    for codec in ("x264", "x265", "av1"):
        assert codec in names
    assert any(h.scale for h in ladder), "needs downscale -> encode rungs"


@pytest.mark.slow
def test_build_is_deterministic_and_manifest_valid(tmp_path: Path) -> None:
    kw = dict(
        frames=6,
        sources=["bikes", "astronaut_zoom", "life"],
        hrcs=["x264_crf28", "x265_crf42", "av1_crf60", "down144_x264_crf30"],
        progress=False,
    )
    m1 = build_demo_corpus(tmp_path / "a", **kw)
    m2 = build_demo_corpus(tmp_path / "b", **kw)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")

    pairs = read_manifest(m1)
    assert len(pairs) == 3 * 4
    assert {p.content for p in pairs} == {"bikes", "astronaut_zoom", "life"}
    ffmpeg = resolve_ffmpeg()
    for p in pairs:
        ref = probe(p.ref, ffmpeg)
        assert (ref.width, ref.height, ref.frames) == (576, 324, 6)
        dist = probe(p.dist, ffmpeg)
        assert dist.frames == 6
        if "down144" in p.key:
            assert (dist.width, dist.height) == (144, 82)
    assert m2.read_text() == m1.read_text()


def test_unknown_source_is_named() -> None:
    with pytest.raises(CorpusError, match="nope"):
        build_demo_corpus("/nonexistent-never-created", sources=["nope"], progress=False)
