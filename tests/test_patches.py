"""The private library internals solar-ray relies on (listed in solar_ray/patches/__init__.py) are still there,
take the parameters the code uses, belong to the library versions recorded; no private import escapes the list,
and no module outside solar_ray/patches/ patches a library."""

import ast
import re
from pathlib import Path

import pytest

import solar_ray
from solar_ray.patches import PRIVATE_APIS, WRITTEN_AGAINST, PrivateApi, problems, version_drift

PRIVATE_MODULE = re.compile(r"^(ray|lm_eval|deepspeed)(\.\w+)*\._[a-z]\w*")
LIBRARIES = {"ray", "lm_eval", "deepspeed"}
ROOT = Path(solar_ray.__file__).parent
PATCHES = ROOT / "patches"


@pytest.mark.parametrize("api", PRIVATE_APIS, ids=lambda api: api.target)
def test_private_api_still_holds(api):
    assert api.library in WRITTEN_AGAINST
    assert problems(api) == []


def test_installed_libraries_are_the_versions_the_patches_were_written_against():
    assert version_drift() == []


def test_a_moved_name_or_changed_signature_is_reported():
    gone = PrivateApi("ray", "ray.actor:ActorClass._no_such_method", "solar_ray.x", "test")
    assert "is gone" in problems(gone)[0]
    renamed = PrivateApi("ray", "ray.actor:ActorClass._remote", "solar_ray.x", "test", ("self", "arguments"))
    assert "the site expects ('self', 'arguments')" in problems(renamed)[0]


def private_names_used() -> set[tuple[str, str]]:
    """(solar_ray module, private library module or module:name) for every private import or logger-name string."""
    found = set()
    for path in ROOT.rglob("*.py"):
        if path == PATCHES / "__init__.py":  # the list itself
            continue
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module if PRIVATE_MODULE.match(node.module) else f"{node.module}:{alias.name}"
                         for alias in node.names if PRIVATE_MODULE.match(node.module) or alias.name.startswith("_")]
                names = [n for n in names if n.split(".")[0] in LIBRARIES]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # e.g. a private logger's name
                names = [node.value] if PRIVATE_MODULE.match(node.value) else []
            found.update((module, name) for name in names if PRIVATE_MODULE.match(name) or ":_" in name)
    return found


def test_every_private_import_in_the_package_is_recorded():
    recorded = {(api.used_in, api.target.split(":")[0]) for api in PRIVATE_APIS}
    recorded |= {(api.used_in, api.target) for api in PRIVATE_APIS}
    used = private_names_used()
    # the scan sees imports
    assert ("solar_ray.patches.ray_train_callbacks", "ray.train.v2._internal.execution.callback") in used
    unrecorded = {(module, name) for module, name in used
                  if (module, name) not in recorded and (module, name.split(":")[0]) not in recorded}
    assert not unrecorded, f"private names missing from solar_ray/patches/__init__.py: {sorted(unrecorded)}"


def test_every_entry_names_a_module_of_the_package():
    for api in PRIVATE_APIS:
        path = ROOT.parent.joinpath(*api.used_in.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), api


def patches_in(source: str) -> list[str]:
    """What `source` does to a library's own code: assigns over one of its attributes (`Class._method = f`,
    setattr), subclasses a class imported from a private module, or overrides a method the list records as
    private. A plain use of a private name (a call, a constant) is none of these."""
    tree = ast.parse(source)
    library_names, private_names = set(), set()  # names bound by imports from the libraries / their private modules
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            library_names.update((a.asname or a.name).split(".")[0] for a in node.names
                                 if a.name.split(".")[0] in LIBRARIES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            bound = {a.asname or a.name for a in node.names}
            library_names |= bound
            if PRIVATE_MODULE.match(node.module):
                private_names |= bound
    private_methods = {api.target.rpartition(".")[2] for api in PRIVATE_APIS if "." in api.target.partition(":")[2]}
    private_methods = {name for name in private_methods if name.startswith("_")}

    def root(node: ast.expr) -> str | None:
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        found += [f"line {node.lineno}: assigns {ast.unparse(t)}" for t in targets
                  if isinstance(t, ast.Attribute) and root(t) in library_names]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                and node.args and root(node.args[0]) in library_names:
            found.append(f"line {node.lineno}: setattr on {ast.unparse(node.args[0])}")
        if isinstance(node, ast.ClassDef):
            found += [f"line {node.lineno}: class {node.name} subclasses private {ast.unparse(base)}"
                      for base in node.bases if root(base) in private_names]
            found += [f"line {item.lineno}: {node.name}.{item.name} overrides a private method"
                      for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and item.name in private_methods]
    return found


def test_the_patch_finder_sees_each_kind_of_patch():
    assert patches_in("from ray.actor import ActorClass\nActorClass._remote = wrapper")
    assert patches_in("import ray.actor\nray.actor.ActorClass._remote = wrapper")
    assert patches_in("from ray.actor import ActorClass\nsetattr(ActorClass, '_remote', wrapper)")
    assert patches_in("from ray.train.v2._internal.execution.callback import ControllerCallback\n"
                      "class C(ControllerCallback):\n    pass")
    assert patches_in("from lm_eval.models.huggingface import HFLM\n"
                      "class M(HFLM):\n    def _loglikelihood_tokens(self, requests):\n        pass")
    assert patches_in("import ray._private.state as s\nx = s.state.get_cluster_config()") == []  # a plain read
    # ...and it finds the real ones, in the package that holds them.
    found = {path.stem: patches_in(path.read_text()) for path in PATCHES.glob("*.py")}
    assert found["lm_eval_context"] and found["ray_train_callbacks"] and found["ray_worker_env"], found


def test_no_module_outside_the_patches_package_patches_a_library():
    outside = {str(path.relative_to(ROOT.parent)): patches_in(path.read_text())
               for path in ROOT.rglob("*.py") if PATCHES not in path.parents}
    assert {path: found for path, found in outside.items() if found} == {}, \
        "move the patch into a module of solar_ray/patches/ (see its docstring), the site imports it from there"
