"""No import circle inside the package: every `solar_ray.*` import, at module level or inside a function.

Function-level imports count too: a lazy import only defers a circle to the first call, and a circle between
two modules means neither can be read, tested or replaced without the other.
"""

import ast
from pathlib import Path

import solar_ray

PACKAGE_ROOT = Path(solar_ray.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports; `from a import b` names a.b when b is a module, else a."""
    this = module_name(path)
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    # `import a.b.c` also runs a and a.b; only package modules matter, and the deepest one that exists.
    resolved = set()
    for name in found:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != this:
            resolved.add(name)
    return resolved


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE_ROOT.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, modules) for path in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search, three colours)."""
    done, on_path = set(), []

    def visit(node: str) -> list[str] | None:
        if node in on_path:
            return on_path[on_path.index(node) :] + [node]
        if node in done:
            return None
        on_path.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        on_path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert "solar_ray.synth.engines" in graph["solar_ray.tiny.rephraser"]  # the walk sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_walk_finds_a_circle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_modules_named_by_path_exist():
    """Registries that import by module path (to keep the graph acyclic) name modules the package ships."""
    from solar_ray.merge.plugin import BUILTIN_METHODS
    from solar_ray.stages import STAGES
    from solar_ray.synth.engines import ENGINE_MODULES

    graph = import_graph()
    named = {*STAGES.values(), *ENGINE_MODULES.values(), BUILTIN_METHODS}
    assert named <= set(graph), sorted(named - set(graph))
