"""The house stays as drawn: arrows only one way, no torch in the asv/CI room, small rooms.

Read from the code's own imports (ast), so a new import that closes a circle, or a torch
import that makes `unet-decoder gate` pay ~10 s before asv even starts, fails here.
"""

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "unet_decoder"
#: Modules that import the ML stack: the asv/CI room must not pull any of them at import.
HEAVY = {"torch", "torchvision", "timm", "torchao", "onnx", "onnxruntime", "openvino", "nncf"}
MAX_LINES = 300


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """(every imported module, those imported at module level), names resolved to the
    package's own modules where they are ours; TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: dict[str, bool] = {}

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                found[target] = found.get(target, False) or inner
            visit(child, inner)

    visit(tree, True)
    return set(found), {name for name, top in found.items() if top}


def _graph():
    files = {_name(p): p for p in PACKAGE.rglob("*.py")}
    edges, top = {}, {}
    for name, path in files.items():
        every, at_top = _imports(path, set(files))
        edges[name] = {m for m in every if m in files and m != name}
        top[name] = at_top
    return files, edges, top


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def test_the_package_has_no_import_cycle():
    _, edges, _ = _graph()
    assert _cycles(edges) == []


def test_the_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_asv_and_ci_room_imports_no_torch_at_module_level():
    """Not itself, and not through any of our modules it imports at module level."""
    files, _, top = _graph()
    for name in (n for n in files if n.startswith("unet_decoder.tracking")):
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            heavy = {m.split(".")[0] for m in top[current]} & HEAVY
            assert not heavy, f"{name} imports {heavy} at module level (through {current})"
            todo.extend(m for m in top[current] if m in files)


def test_lower_rooms_never_import_higher_ones():
    """cli -> tracking, tune -> bench -> deploy -> engines -> passes -> model -> errors."""
    floors = ["errors", "version", "machine", "files", "provenance", "model", "passes", "training",
              "engines", "deploy", "census", "bench", "tune", "benchmarking", "tracking",
              "cli"]  # fmt: skip
    _, edges, _ = _graph()

    def floor(module: str) -> int:
        parts = module.split(".")
        return floors.index(parts[1]) if len(parts) > 1 else len(floors)

    upward = sorted((a, b) for a, targets in edges.items() for b in targets
                    if a != "unet_decoder" and floor(b) > floor(a))  # fmt: skip
    assert upward == []


def test_no_module_is_longer_than_300_lines():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    lines = {p: len((ROOT / p).read_text(encoding="utf-8").splitlines()) for p in tracked}
    long = {p: n for p, n in lines.items() if n > MAX_LINES and not p.startswith("tests/")}
    assert long == {}
