"""The package's layers: nas.arch needs nothing else of nas and never Ray or Optuna; every
package imports only the layers below it (the flow the README's diagram shows)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.searchkit import ROOT

NAS = ROOT / "nas"
# package -> the nas packages (or top-level modules) it may import
ALLOWED = {
    "arch": set(),
    "machine": set(),
    "results": {"arch", "machine"},
    "data": {"results"},
    "train": {"data", "machine"},
    "search": {"answer", "arch", "data", "latency", "machine", "results", "train"},
    "dashboard": {"answer", "arch", "latency", "results"},  # the answer's words, as answer.md
    "bench": {"arch", "latency", "results", "search"},
    "answer": {"results"},  # pure statistics over a trials table: no Ray, no training
    "study": {"arch", "results", "search"},
    # the latency table: pieces of a plan timed on each runtime, cached with the results' writer
    "latency": {"arch", "data", "machine", "results", "train"},
    "supernet": {"arch", "data", "latency", "results", "search", "train"},
    "onnx_export": {"results"},
    "export": {"arch", "latency", "onnx_export", "results", "search", "train"},
    "retrain": {"arch", "data", "latency", "results", "search", "train"},
    # the notebook API: the library's entry points, as the actions call them
    "api": {"arch", "dashboard", "export", "results", "retrain", "search"},
    # the actions on top: any library package; none imports nas.cli (absent from every set)
    "cli": {"answer", "arch", "bench", "dashboard", "data", "export", "latency", "machine",
            "onnx_export", "results", "retrain", "search", "study", "supernet", "train"},
}


def _layer(module: str) -> str:
    """'nas.search.engine' -> 'search'; 'nas.results' -> 'results'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "nas"


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (at any depth: deferred imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_every_package_imports_only_the_layers_below_it():
    broken = []
    for path in sorted(NAS.rglob("*.py")):
        own = _layer(_module(path))
        for target in _imports(path):
            if target.split(".")[0] != "nas":
                continue
            layer = _layer(target)
            if layer not in (own, "nas") and layer not in ALLOWED.get(own, set()):
                broken.append(f"{_module(path)} imports {target}")
    assert not broken, broken
    assert set(ALLOWED) >= {_layer(_module(p)) for p in NAS.rglob("*.py")} - {"nas"}


def test_no_library_module_parses_a_command_line():
    """argparse lives in nas/cli/ only: the library takes typed requests, never a Namespace."""
    parsing = [_module(path) for path in sorted(NAS.rglob("*.py"))
               if _layer(_module(path)) != "cli" and any(
                   target.split(".")[0] == "argparse" for target in _imports(path))]
    assert not parsing, parsing
    assert not any("cli" in allowed for allowed in ALLOWED.values())


def test_arch_imports_no_other_nas_package_and_no_search_engine():
    for path in sorted((NAS / "arch").rglob("*.py")):
        for target in _imports(path):
            top = target.split(".")[0]
            assert top not in ("ray", "optuna", "pandas", "plotly"), f"{path}: {target}"
            if top == "nas":
                assert target.startswith("nas.arch"), f"{path} imports {target}"


# A fresh interpreter: build, cost and generate code for every preset, then list what loaded.
PROBE = """
import json, sys
from nas.arch.codegen import Provenance, generate
from nas.arch.cost import cost
from nas.arch.model import build
from nas.arch.zoo import PRESETS, preset
for name in PRESETS:
    arch = preset(name)
    build(arch), cost(arch), generate(arch, Provenance(run="layering-test"))
print(json.dumps(sorted(sys.modules)))
"""


def test_the_architecture_layer_runs_without_ray_optuna_or_the_rest_of_nas():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "nas.arch.codegen" in loaded and "torch" in loaded  # the probe really ran
    for forbidden in ("ray", "optuna", "nas.search", "nas.data", "nas.dashboard", "nas.results",
                      "nas.train"):
        assert not {m for m in loaded if m == forbidden or m.startswith(forbidden + ".")}, \
            f"{forbidden} was imported"
