"""The import graph of model/ runs one way: no cycle, the four studies do not import each
other (what they share lives in studies/common), and the core (nn, data, train, infer and the
modules beside them) imports no study and no cli. Read from the source, function-level imports
included (a lazy import still ties two modules together)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "model"
STUDIES = tuple(f"model.studies.{s}" for s in ("scaling", "fewshot", "emergence", "instruct"))
CORE = ("model.nn", "model.data", "model.train", "model.infer")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(name: str) -> set[str]:
    """The model modules that module `name` imports."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: up level - 1 packages from this module's own
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import checkpoint` imports the module model.train.checkpoint
            found |= {target} | {f"{target}.{a.name}" for a in node.names}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported(name) for name in MODULES}


def cycle() -> list[str] | None:
    """One import cycle of the graph, as the modules along it, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name], path = "open", path + [name]
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == "open":  # back on the path: a cycle
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, path)
                if found:
                    return found
        state[name] = "done"
        return None

    for name in sorted(GRAPH):
        if name not in state:
            found = visit(name, [])
            if found:
                return found
    return None


def test_the_graph_is_read_from_the_source():
    assert "model.nn.gpt" in GRAPH["model.train.trainer"]  # a top-level relative import
    assert "model.train.checkpoint" in GRAPH["model.train.trainer"]  # `from . import checkpoint`
    assert "model.train.trainer" in GRAPH["model.cli.bench"]  # an import inside a function
    assert "model.studies.common.icl" in GRAPH["model.studies.fewshot.run"]


def test_no_import_cycle():
    assert cycle() is None, " -> ".join(cycle())


def test_the_studies_are_siblings():
    assert all(any(m.startswith(s + ".") for m in GRAPH) for s in STUDIES)  # all four read
    for a in STUDIES:
        for b in STUDIES:
            if a != b:
                crossing = [(m, d) for m, deps in GRAPH.items() if m.startswith(a + ".")
                            for d in deps if d.startswith(b + ".") or d == b]
                assert not crossing, f"{a} imports {b}: {crossing}"


def core(name: str) -> bool:
    """A module of the core: one of its packages, or a module beside them in model/."""
    return name.startswith(tuple(p + "." for p in CORE)) or name in CORE or (
        name.count(".") == 1 and name not in ("model.cli", "model.studies"))


def test_the_core_imports_no_study_and_no_cli():
    assert core("model.train.trainer") and core("model.errors") and not core("model.cli.bench")
    upward = [(m, d) for m in GRAPH if core(m) for d in GRAPH[m]
              if d.startswith(("model.studies", "model.cli"))]
    assert not upward, upward
