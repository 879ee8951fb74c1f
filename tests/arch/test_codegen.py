"""Code generation: exported classes reproduce the search model without `nas`; safe, ruff-clean."""

import ast
import dataclasses
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nas.arch import codegen
from nas.arch.codegen import CodegenError, Provenance, check_source, generate
from nas.arch.cost import cost
from nas.arch.genotype import Stage
from nas.arch.model import build
from nas.arch.zoo import PRESETS, preset, xception_genotype
from nas.train.device import cpu_threads
from tests.sampling import random_genotype

RUFF = Path(sys.executable).parent / "ruff"
RANDOM_GENOTYPES = 30
# A fresh interpreter in which `import nas` fails: the exported code must need torch only.
NO_NAS = "import sys; sys.modules['nas'] = None\n"


def _genotypes():
    named = [(f"preset_{name}", preset(name)) for name in PRESETS]
    named.append(("xception", xception_genotype()))
    named += [(f"random_{i}", random_genotype(random.Random(i))) for i in range(RANDOM_GENOTYPES)]
    return named


def _randomize_norms(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and affine weights, so eval mode really exercises them."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every reference architecture and 30 random ones: code, weights, input, outputs on disk."""
    folder = tmp_path_factory.mktemp("codegen")
    names = []
    with cpu_threads(1), torch.inference_mode():
        for i, (name, genotype) in enumerate(_genotypes()):
            source = generate(genotype, Provenance(run="results/x", trial_id=f"t{i}"))
            (folder / f"{name}.py").write_text(source)
            torch.manual_seed(i)
            model = build(genotype).eval()
            _randomize_norms(model, i)
            batch = 1 if name == "xception" else 2  # 299x299: one image is enough
            x = torch.randn(batch, genotype.in_channels, genotype.resolution, genotype.resolution)
            features = model.forward_features(x)
            torch.save({"state": model.state_dict(), "keys": list(model.state_dict()), "x": x,
                        "features": features, "out": model.forward_head(features),
                        "pre_logits": model.forward_head(features, pre_logits=True)},
                       folder / f"{name}.pt")
            names.append(name)
    return folder, names


CHECK = NO_NAS + textwrap.dedent("""
    import importlib, json
    import torch
    torch.set_num_threads(1)
    try:
        import nas  # noqa: F401
        nas_blocked = False
    except ImportError:
        nas_blocked = True
    worst = {}
    for name in json.loads(sys.argv[1]):
        ref = torch.load(name + ".pt", weights_only=True)
        net = importlib.import_module(name).SearchedNet().eval()
        net.load_state_dict(ref["state"], strict=True)
        assert list(net.state_dict()) == ref["keys"], name
        with torch.inference_mode():
            features = net.forward_features(ref["x"])
            out = net.forward_head(features)
            pre = net.forward_head(features, pre_logits=True)
        worst[name] = max(float((a - b).abs().max()) for a, b in
                          ((features, ref["features"]), (out, ref["out"]),
                           (pre, ref["pre_logits"])) if a.shape == b.shape) if (
            features.shape == ref["features"].shape and out.shape == ref["out"].shape
            and pre.shape == ref["pre_logits"].shape) else float("inf")
    print(json.dumps({"nas_blocked": nas_blocked, "worst": worst}))
""")


def test_round_trip_without_nas_matches_the_search_model(exported):
    folder, names = exported
    done = subprocess.run([sys.executable, "-c", CHECK, json.dumps(names)], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["nas_blocked"]
    assert len(report["worst"]) == len(PRESETS) + 1 + RANDOM_GENOTYPES
    bad = {name: diff for name, diff in report["worst"].items() if not diff <= 1e-6}
    assert not bad


def test_generated_code_is_ruff_clean(exported):
    folder, _ = exported
    if not RUFF.is_file():
        pytest.fail(f"ruff not found at {RUFF}; install the dev extra", pytrace=False)
    # --isolated: the defaults a user's project most likely has, not this repo's settings
    fmt = subprocess.run([str(RUFF), "format", "--isolated", "--check", "."], cwd=folder,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout[-3000:]
    lint = subprocess.run([str(RUFF), "check", "--isolated", "--select",
                           "E,F,W,I,B,UP,SIM,RUF,N,C4,PIE,RET", "."], cwd=folder,
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:]


def test_layer_names_match_the_search_model_and_forward_is_explicit():
    genotype = preset("separable", depth=1, units=1)
    source = generate(genotype)
    for line in ("self.s2.b1 = Layers(", "conv=nn.Conv2d(", "y = self.s1.b1.act(x)",
                 "y = self.s1.b1.conv_dw(y)", "x = y + x",
                 "s = self.s2.b1.shortcut.conv(x)", "x = y + s", "return self.head.fc(x)",
                 "def forward_features(self, x: torch.Tensor)", "if pre_logits:"):
        assert line in source, line
    imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(n) for n in imports] == ["import torch", "from torch import nn"]


def test_docstring_describes_architecture_cost_accuracy_and_source():
    genotype = preset("resnext")
    provenance = Provenance(run="results/cifar-1", trial_id="ab12cd34", git_sha="0123abc-dirty",
                            val_acc=0.8125, epoch=12)
    doc = ast.get_docstring(ast.parse(generate(genotype, provenance)))
    for part in ("s1: resnext", "s3: resnext", "stem:", "head: global avg pool",
                 f"{cost(genotype).params:,} parameters", f"{cost(genotype).macs:,} multiply-adds",
                 "Validation accuracy: 0.8125 (checkpoint of epoch 12)",
                 "Search run: results/cifar-1", "Trial: ab12cd34", "Git commit: 0123abc-dirty"):
        assert part in doc, part


def test_normalisation_becomes_class_constants():
    provenance = Provenance(mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    source = generate(preset("separable"), provenance)
    namespace: dict = {}
    exec(compile(source, "model.py", "exec"), namespace)  # our own generated, checked source
    net = namespace["SearchedNet"]
    assert net.MEAN == (0.49, 0.48, 0.45) and net.STD == (0.25, 0.24, 0.26)
    assert "x = (pixels / 255 - MEAN) / STD" in ast.get_docstring(ast.parse(source))
    assert "MEAN" not in generate(preset("separable"))  # not recorded: not invented
    for bad in (Provenance(mean=(0.5, 0.5), std=(0.2, 0.2)),
                Provenance(mean=(0.5,) * 3, std=(0.2, 0.0, 0.2)),
                Provenance(mean=(0.5, float("nan"), 0.5), std=(0.2,) * 3)):
        with pytest.raises(CodegenError):
            generate(preset("separable"), bad)


def test_code_like_genotype_strings_are_refused():
    evil = "__import__('os').system('touch pwned')"
    genotype = preset("regular")
    bad_stage = dataclasses.replace(genotype.stages[0], kind=evil)  # bypasses parsing
    with pytest.raises(CodegenError, match=r"stage s1\.kind"):
        generate(dataclasses.replace(genotype, stages=(bad_stage, *genotype.stages[1:])))
    with pytest.raises(CodegenError, match="act"):
        generate(dataclasses.replace(genotype, act=evil))
    with pytest.raises(CodegenError, match="width"):
        generate(dataclasses.replace(genotype, stages=(Stage(width="8"),)))  # a str, not an int


def test_free_text_cannot_escape_the_docstring():
    nasty = 'x"""\nimport os\nos.system("touch pwned")\n"""'
    source = generate(preset("regular"), Provenance(run=nasty, trial_id=nasty, git_sha=nasty))
    tree = ast.parse(source)
    assert [type(n).__name__ for n in tree.body] == ["Expr", "Import", "ImportFrom", "ClassDef",
                                                     "ClassDef"]  # docstring, torch, 2 classes
    assert "Search run: x____import os_os.system(_touch pwned_)____" in ast.get_docstring(tree)
    check_source(source)


@pytest.mark.parametrize("snippet", [
    "import os", "from torch import nn, hub", "x = 'text'", "eval(x)", "x = self.__class__",
    "x = lambda: 1",
])
def test_check_source_refuses_anything_it_does_not_write(snippet):
    with pytest.raises(CodegenError):
        check_source(f'"""Doc."""\n\nimport torch\n{snippet}\n')


@pytest.mark.parametrize("name", ["x", "self", "__class__", "fc; import os", "Conv", "for", "a b",
                                  "forward", "training", ""])
def test_layer_names_must_be_plain_identifiers(name):
    with pytest.raises(CodegenError):
        codegen._name(name)
