"""The private library internals solar-ray relies on (solar_ray/patches.py) are still there, take the parameters
the sites use, belong to the library versions recorded; and no private import escapes the list."""

import ast
import re
from pathlib import Path

import pytest

import solar_ray
from solar_ray.patches import PRIVATE_APIS, WRITTEN_AGAINST, PrivateApi, problems, version_drift

PRIVATE_MODULE = re.compile(r"^(ray|lm_eval|deepspeed)(\.\w+)*\._[a-z]\w*")


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
    root = Path(solar_ray.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        if path.name == "patches.py":  # the list itself
            continue
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module if PRIVATE_MODULE.match(node.module) else f"{node.module}:{alias.name}"
                         for alias in node.names if PRIVATE_MODULE.match(node.module) or alias.name.startswith("_")]
                names = [n for n in names if n.split(".")[0] in {"ray", "lm_eval", "deepspeed"}]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # e.g. a private logger's name
                names = [node.value] if PRIVATE_MODULE.match(node.value) else []
            found.update((module, name) for name in names if PRIVATE_MODULE.match(name) or ":_" in name)
    return found


def test_every_private_import_in_the_package_is_recorded():
    recorded = {(api.used_in, api.target.split(":")[0]) for api in PRIVATE_APIS}
    recorded |= {(api.used_in, api.target) for api in PRIVATE_APIS}
    used = private_names_used()
    assert ("solar_ray.tune.orphans", "ray.train.v2._internal.execution.callback") in used  # the scan sees imports
    unrecorded = {(module, name) for module, name in used
                  if (module, name) not in recorded and (module, name.split(":")[0]) not in recorded}
    assert not unrecorded, f"private names missing from solar_ray/patches.py: {sorted(unrecorded)}"
