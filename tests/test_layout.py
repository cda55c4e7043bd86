"""The house's floors: synclib's import graph has no circle, and no module imports another
inside a function (the CLI's lazy imports excepted, so that `synclib --help` stays fast)."""

import ast
from pathlib import Path

import synclib

PKG = Path(synclib.__file__).resolve().parent
LAZY = {"synclib.cli"}  # the CLI imports each command's machinery when that command runs


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _targets(mod: str, path: Path, node, mods) -> list[str]:
    """The synclib modules an import statement reaches (a package's submodules included)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    if node.level:
        base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        pkg = ".".join(base + ([node.module] if node.module else []))
    else:
        pkg = node.module or ""
    subs = [f"{pkg}.{a.name}" for a in node.names if f"{pkg}.{a.name}" in mods]
    return subs if node.module is None and subs else [m for m in [pkg, *subs] if m in mods]


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, int]]]:
    """(module -> the synclib modules it imports, [(module, line) of each import inside a function])."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    inner = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        in_func = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if id(node) in in_func:
                    inner.append((mod, node.lineno))
                edges[mod].update(t for t in _targets(mod, path, node, mods) if t != mod)
    return edges, inner


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_the_cycle_finder_finds_a_known_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_synclib_imports_run_one_way():
    edges, _ = import_graph()
    assert "synclib.study" in edges["synclib.analysis.runs"] and "synclib.tables" not in edges["synclib.analysis"]
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def test_no_import_hides_in_a_function():
    _, inner = import_graph()
    assert [(m, line) for m, line in inner if m not in LAZY] == []
