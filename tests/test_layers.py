"""The package's folders are its layers (README, "The package"): each module imports only its own layer and the layers
below it, every module sits in a layer, and every command keeps its short form ``python -m vgg_tutorial.<name>``."""

import ast
import fnmatch
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vgg_tutorial

ROOT = Path(__file__).parent.parent
PACKAGE = Path(vgg_tutorial.__file__).parent
#: From the bottom up: a module may import its own layer and the layers before it, never one after it.
LAYERS = ("paper", "data", "training", "testing", "studies", "lessons")


def layer_of(module: str) -> int:
    """The place of ``module`` in :data:`LAYERS`; ``vgg_tutorial`` itself and the commands' short forms sit above."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def imported(module: str, source: str) -> list[str]:
    """The ``vgg_tutorial`` modules that ``source`` (the module ``module``) imports, anywhere in it, relative or not."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative to the module's package (a package's own module is "<package>.__init__")
                base = module.split(".")[: len(module.split(".")) - node.level]
                found.append(".".join(base + ([node.module] if node.module else [])))
            else:
                found.append(node.module)
    return [name for name in found if name == "vgg_tutorial" or name.startswith("vgg_tutorial.")]


def upward_imports(modules: dict[str, str]) -> list[str]:
    """Every import, in ``modules`` (name: source), of a layer above the importing module's own."""
    return [
        f"{name} ({LAYERS[layer_of(name)]}) imports {target}"
        for name, source in modules.items()
        for target in imported(name, source)
        if layer_of(target) > layer_of(name)
    ]


def package_modules() -> dict[str, str]:
    return {
        "vgg_tutorial." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(package_modules()) == []


@pytest.mark.parametrize(
    "module, source",
    [
        ("vgg_tutorial.data.loaders", "from vgg_tutorial.studies.experiments import S_MAX"),
        ("vgg_tutorial.training.train", "def f():\n    from vgg_tutorial.testing import evaluate"),  # inside a function
        ("vgg_tutorial.paper.models", "import vgg_tutorial.data.transforms"),
        ("vgg_tutorial.testing.views", "from ..lessons import plotting"),  # relative
        ("vgg_tutorial.studies.failures", "from vgg_tutorial import vgg"),  # the package's re-exports sit above all
    ],
)
def test_the_check_finds_an_import_from_a_layer_above(module, source):
    assert len(upward_imports({module: source})) == 1


def test_the_check_allows_the_same_layer_and_the_layers_below():
    modules = {
        "vgg_tutorial.studies.experiments": "from vgg_tutorial.studies import common\nfrom ..paper import configs",
        "vgg_tutorial.lessons.__init__": "from . import plotting",
        "vgg_tutorial.__init__": "from vgg_tutorial.lessons.plotting import plot_history",
    }
    assert upward_imports(modules) == []


def short_forms() -> dict[str, str]:
    """The commands' short forms (``vgg_tutorial/<name>.py``) and the module each one runs."""
    forms = {}
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "__init__.py":
            continue
        runs = re.findall(r'runpy\.run_module\("([\w.]+)", run_name="__main__"', path.read_text())
        assert len(runs) == 1, f"{path.name} is neither a layer's module nor a command's short form"
        forms[path.stem] = runs[0]
    return forms


def test_every_module_sits_in_a_layer_or_is_a_command():
    for name, target in short_forms().items():
        assert importlib.util.find_spec(target) is not None and layer_of(target) < len(LAYERS), name
        assert target.endswith("." + name), f"python -m vgg_tutorial.{name} runs {target}, another name"
        assert 'if __name__ == "__main__":' in Path(importlib.util.find_spec(target).origin).read_text(), target
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        assert len(parts) == 1 or parts[0] in LAYERS, f"{path} is outside the layers"


def commands_in_the_docs() -> set[str]:
    texts = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "book").glob("*.ipynb"))]
    return {name for path in texts for name in re.findall(r"python -m vgg_tutorial\.(\w+)(?![\w.])", path.read_text())}


def test_every_command_of_the_book_works_as_written():
    """``python -m vgg_tutorial.<name> --help`` for every name the README, the Makefile and the chapters use: each
    prints its usage under that same name (one interpreter for all, through the short forms' own runpy)."""
    names = sorted(commands_in_the_docs())
    assert {"train", "evaluate", "bench", "gpu_results"} <= set(names) and set(names) <= set(short_forms())
    script = "\n".join(
        [
            "import runpy, sys",
            "for name in sys.argv[1:]:",
            "    sys.argv = [name, '--help']",
            "    try:",
            "        runpy.run_module(f'vgg_tutorial.{name}', run_name='__main__', alter_sys=True)",
            "    except SystemExit as stop:",
            "        assert stop.code in (0, None), (name, stop.code)",
            "    print('<<end>>', flush=True)",
        ]
    )
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script, *names], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    usages = done.stdout.split("<<end>>")[:-1]
    assert len(usages) == len(names)
    for name, usage in zip(names, usages):
        assert usage.strip().startswith(f"usage: python -m vgg_tutorial.{name}"), (name, usage[:200])


def test_an_installed_package_holds_every_layer():
    """``pip install`` (Colab's install cell) must copy every sub-package, not only the ones a list names."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert len(folders) == len(LAYERS) + 2  # the package, its layers, and lessons.exercises
    packages = setuptools["packages"]  # a list, or {"find": {"include": [...]}}
    if isinstance(packages, list):
        assert set(packages) >= folders
    else:
        patterns = packages["find"]["include"]
        assert all(any(fnmatch.fnmatch(folder, pattern) for pattern in patterns) for folder in folders)
