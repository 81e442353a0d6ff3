"""The packages' imports, read from their source with `ast`: no import circle between the modules of
`mtan`, `study`, `analysis` and `devtools`; in `mtan` none hidden in a function, and nothing from above it
(Ray, Optuna, `study`, `analysis`)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ABOVE_MTAN = ("ray", "optuna", "study", "analysis", "devtools")
# Imports inside a function that are there on purpose, not to break a circle: matplotlib takes seconds to
# import and only `--figures` needs it.
DEFERRED = {("mtan.evaluate", "mtan.figures")}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The modules an import statement names (``from mtan import x`` names ``mtan.x`` when that is a
    module); relative imports resolved against `package`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(imported when the module is imported, imported inside a function); `if TYPE_CHECKING:` blocks
    import nothing at run time and are skipped."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top: set[str] = set()
    deferred: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if is_type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                (deferred if in_function else top).update(imported(child, package))
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(path.read_text()), False)
    return top, deferred


def import_graph(*packages: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Each module of `packages`' imports of their modules, at import time and inside functions."""
    paths = sorted(path for package in packages for path in (REPO / package).rglob("*.py"))
    names = {module_name(p) for p in paths}
    top, deferred = {}, {}
    for path in paths:
        at_import, in_function = imports_of(path)
        top[module_name(path)] = {m for m in at_import if m in names} - {module_name(path)}
        deferred[module_name(path)] = {m for m in in_function if m in names}
    return top, deferred


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of `graph` (modules in order, the first again at the end), or [] when none."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node], _ = "open", stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[node], _ = "done", stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_cycle_finder_finds_a_hand_made_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_mtan_has_no_import_circle():
    top, deferred = import_graph("mtan")
    assert "mtan.model" in top["mtan.evaluate"] and "mtan.evaluate" in top["mtan.train"]  # the graph is read
    assert cycle(top) == []
    assert cycle({m: top[m] | deferred[m] for m in top}) == []  # not even through a deferred import


def test_the_packages_have_no_import_circle_between_them_either():
    top, deferred = import_graph("mtan", "study", "analysis", "devtools")
    assert "study.record" in top["analysis.load"] and "mtan.train" in top["study.trainable"]  # read
    assert cycle(top) == []
    assert cycle({m: top[m] | deferred[m] for m in top}) == []


def test_mtan_imports_in_functions_only_what_is_deferred_on_purpose():
    _, deferred = import_graph("mtan")
    assert {(m, t) for m, targets in deferred.items() for t in targets} == DEFERRED


def test_mtan_imports_nothing_above_it():
    for path in sorted((REPO / "mtan").rglob("*.py")):
        top, in_function = imports_of(path)
        above = sorted(m for m in top | in_function if m.split(".")[0] in ABOVE_MTAN)
        assert not above, f"{path.relative_to(REPO)} imports {above}"
