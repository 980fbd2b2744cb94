"""`make bench` runs every benchmark that needs nothing but the install, and names the rest: each
script in benchmarks/ is in exactly one of the Makefile's two lists (a fresh clone's `make bench`
once stopped at the first script that required a data set)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_list(name: str) -> set[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name} := (.*)$", text, re.M)
    assert match, f"Makefile has no {name}"
    return set(match.group(1).split())


def required_options(script: Path) -> list[str]:
    """The options a script's argparse parser requires (add_argument(..., required=True))."""
    found = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            if any(k.arg == "required" and getattr(k.value, "value", False) is True for k in node.keywords):
                found.append(node.args[0].value)
    return found


def test_every_benchmark_is_listed_once_and_the_self_contained_ones_need_no_option():
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")}
    alone, with_data = make_list("BENCH_SELF_CONTAINED"), make_list("BENCH_WITH_DATA")
    assert alone | with_data == scripts and not alone & with_data
    for name in alone:
        assert required_options(ROOT / "benchmarks" / f"{name}.py") == [], name
