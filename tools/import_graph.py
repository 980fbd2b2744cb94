"""Count handrecon's internal imports against the layers of DESIGN.md: how many are function-local,
how many run upward (a lower layer importing a higher one), and which import cycles exist.

    python tools/import_graph.py            # summary
    python tools/import_graph.py --list     # every upward import and every cycle

`lint-imports` (contracts in pyproject.toml) is the check that fails CI; this script is the report.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"

# Lowest first; a module belongs to the first prefix that matches it (longest prefixes first).
LAYERS = [
    ["handrecon.version", "handrecon.registry", "handrecon.checkpoint", "handrecon.utils"],
    ["handrecon.hand", "handrecon.mesh", "handrecon.geometry"],
    ["handrecon.data", "handrecon.render", "handrecon.losses", "handrecon.eval", "handrecon.train"],
    ["handrecon.models"],
    ["handrecon.infer"],
    ["handrecon.cli", "handrecon.demo", "handrecon.serve", "handrecon"],
]


def layer_of(module: str) -> int:
    best, level = -1, len(LAYERS) - 1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    return level


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported handrecon module, is function-local) for each import statement of `path`."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    local_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [base]
        else:
            continue
        for name in names:
            if name == "handrecon" or name.startswith("handrecon."):
                out.append((name, id(node) in local_nodes))
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan), at package granularity."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def package_of(module: str) -> str:
    """handrecon.<sub> (or handrecon.models.<family>), the unit that cycles are counted between."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] == "models" and (ROOT / "handrecon" / "models" / parts[2]).is_dir():
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list every upward import and cycle")
    args = ap.parse_args()
    total = local = 0
    upward: list[str] = []
    module_edges: dict[str, set[str]] = defaultdict(set)
    package_edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted((ROOT / "handrecon").rglob("*.py")):
        src = module_name(path)
        for target, is_local in imports(path):
            total += 1
            local += is_local
            module_edges[src].add(target)
            if package_of(src) != package_of(target):
                package_edges[package_of(src)].add(package_of(target))
            if layer_of(target) > layer_of(src):
                upward.append(f"{src} -> {target}{' (function-local)' if is_local else ''}")
    package_cycles = cycles(package_edges)
    print(f"internal imports: {total}, function-local: {local}, upward: {len(upward)}, "
          f"package cycles: {len(package_cycles)}")
    if args.list:
        for line in upward:
            print("  up:", line)
        for comp in package_cycles:
            print("  cycle:", " <-> ".join(comp))


if __name__ == "__main__":
    main()
