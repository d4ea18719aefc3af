"""README.md's pipeline figures are the committed results: its generated blocks equal a fresh render.

When this fails after a pipeline run: `make readme` (python -m tinyvmaf.report readme), then commit
README.md with metrics/. The render itself, and that a changed metric fails the check, are tested on
the shared pipeline's results (tests/pipeline/test_committed_results.py).
"""

from __future__ import annotations

from tinyvmaf.report.readme import BLOCKS, blocks_in, check_readme

from kit import REPO


def test_readme_has_every_generated_block() -> None:
    assert sorted(blocks_in((REPO / "README.md").read_text())) == sorted(BLOCKS)


def test_readme_figures_equal_a_render_of_the_committed_metrics() -> None:
    stale = check_readme(REPO)
    assert stale == [], f"README blocks {stale} differ from the committed metrics: run `make readme` and commit"
