"""tools/planted_mutations.py stays applicable: every planted edit's text is still in its file and
its test files exist (a refactor once left one edit stale, silently no longer planted)."""

from __future__ import annotations

from pathlib import Path

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_every_planted_mutation_still_applies():
    mutations = load_script("tools/planted_mutations.py").MUTATIONS
    stale = [name for name, path, old, new, tests in mutations if old not in (ROOT / path).read_text() or old == new]
    missing = sorted({t for *_, tests in mutations for t in tests if not (ROOT / t).is_file()})
    assert not stale, f"edits whose text is gone or that change nothing (update tools/planted_mutations.py): {stale}"
    assert not missing, f"test files named by mutations but missing: {missing}"
    assert len({name for name, *_ in mutations}) == len(mutations), "two mutations share a name"


def test_the_docs_state_how_many_mutations_are_planted():
    """README, docs/testing.md and the tool's own usage line give the number of planted bugs; it
    drifted once (the README said 122 while 158 were planted)."""
    n = len(load_script("tools/planted_mutations.py").MUTATIONS)
    assert f"applies {n} known bugs" in (ROOT / "README.md").read_text()
    assert f"runs all {n};" in (ROOT / "docs" / "testing.md").read_text()
    assert f"# all {n}," in (ROOT / "tools" / "planted_mutations.py").read_text()
