"""The package's shape, checked: no import circle among its modules or between its stages, every module
listed in docs/layout.md, every package saying what it holds, and the boundaries DESIGN.md draws
(eval/ and student/ run on a GPU machine without the teachers or mediapipe)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "labeltool"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every labeltool module ``name`` imports, at module level or inside a function (a lazy import is
    still a dependency); not those under ``if TYPE_CHECKING:``, which never run."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(), str(path))
    type_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for stmt in node.body for inner in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _stage(module: str) -> str:
    """``labeltool.distill.plan`` -> ``labeltool.distill``; a top-level module is its own stage."""
    return ".".join(module.split(".")[:2])


def test_the_walker_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    graph = _graph()
    assert "labeltool.layouts" in graph["labeltool.eval.evaluator"]  # it sees real imports


def test_no_import_circle_between_modules():
    assert _cycles(_graph()) == []


def test_no_import_circle_between_stages():
    """Stages are labeltool's sub-packages and top-level modules; a ``__main__`` is an entry point nothing imports."""
    stages: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        if module.endswith(".__main__"):
            continue
        stages.setdefault(_stage(module), set()).update(_stage(d) for d in deps if _stage(d) != _stage(module))
    assert _cycles(stages) == []


def test_eval_and_student_need_no_teachers():
    """DESIGN.md: the GPU machine has torch but not the teachers; eval/ and student/ must import without them."""
    graph = _graph()
    leaks = sorted(f"{m} -> {d}" for m, deps in graph.items() if _stage(m) in ("labeltool.eval", "labeltool.student")
                   for d in deps if _stage(d) in ("labeltool.teachers", "labeltool.distill", "labeltool.merge"))
    assert leaks == []
    for module, path in _modules().items():
        if _stage(module) in ("labeltool.eval", "labeltool.student"):
            assert "import mediapipe" not in path.read_text(), module


def _named_in_layout() -> set[str]:
    """Module paths docs/layout.md names: ``labeltool/x.py`` anywhere, or ``y.py`` in the row of ``labeltool/pkg/``."""
    named = set()
    for line in (REPO / "docs" / "layout.md").read_text().splitlines():
        named.update(re.findall(r"`(labeltool/[\w/]+\.py)`", line))
        row = re.match(r"\| `(labeltool/\w+)/`", line)
        if row:
            named.update(f"{row.group(1)}/{m}" for m in re.findall(r"`(\w+\.py)`", line))
    return named


def test_every_module_is_in_the_layout_doc():
    named = _named_in_layout()
    missing = [str(path.relative_to(REPO)) for path in _modules().values()
               if path.name != "__init__.py" and str(path.relative_to(REPO)) not in named]
    assert missing == []


def test_every_package_says_what_it_holds():
    for path in _modules().values():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert len(doc.split()) >= 8, f"{path.relative_to(REPO)}: its docstring does not say what it holds"
