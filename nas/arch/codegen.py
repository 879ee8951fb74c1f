"""Layer plan -> standalone PyTorch source: one class with explicit layers and a straight forward.

Safety: the source is built only from the validated layer plan. Numbers are checked to be real
ints / floats and printed by Python's own repr; layer names must be plain identifiers (the plan
makes them from fixed strings and ints); enumeration values (activation and pooling kinds) are
looked up in fixed tables, never copied into the code. Free text (run folder, trial id) only
reaches the module docstring, filtered to a harmless character set. `check_source` then parses
the result and rejects anything outside the shapes this module writes.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
import textwrap
from dataclasses import dataclass

from torch import nn

from nas.arch.cost import cost
from nas.arch.describe import describe_arch
from nas.arch.genotype import Genotype, GenotypeError
from nas.arch.plan import (
    Activation,
    Block,
    Chain,
    Concat,
    Conv,
    Dropout,
    GlobalPool,
    Linear,
    Norm,
    Plan,
    Pool,
    Seq,
    plan,
)

CLASS_NAME = "SearchedNet"
CONTAINER = "Layers"
WIDTH = 88  # ruff's default line length: the file is checked without the repo's config
# enumeration value -> code; a kind missing here is an error, never text in the output
ACTIVATION_CODE = {"relu": "nn.ReLU()", "elu": "nn.ELU()", "silu": "nn.SiLU()", "gelu": "nn.GELU()"}
GLOBAL_POOL_CODE = {
    "avg": ("x = x.mean((2, 3))", "global average pooling"),
    "max": ("x = x.amax((2, 3))", "global max pooling"),
}
KINDS = {"conv": "conv block", "spectrum": "spectrum block", "inception": "inception module",
         "resnext": "resnext block"}
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_RESERVED = {"x", "y", "s", "self", "torch", "nn", "pre_logits"}  # locals of the generated code
_MODULE_ATTRIBUTES = frozenset(dir(nn.Module()))  # a layer named "forward" or "training" breaks
_UNSAFE_TEXT = re.compile(r"[^A-Za-z0-9 ._:/+=()%,-]")  # no quotes, backslashes or newlines


class CodegenError(ValueError):
    """A plan or genotype value that the code generator refuses to write."""


@dataclass(frozen=True)
class Provenance:
    """Where the exported weights come from; every field optional (None: not stated)."""

    run: str | None = None
    trial_id: str | None = None
    git_sha: str | None = None
    val_acc: float | None = None
    epoch: int | None = None
    mean: tuple[float, ...] | None = None  # per-channel input normalisation of the training
    std: tuple[float, ...] | None = None  # split, in [0, 1] pixel units


# ---------------------------------------------------------------------------
# Checked literals


def _int(value: object) -> str:
    """An int as code; bools, floats and strings are refused."""
    if type(value) is not int:
        raise CodegenError(f"expected an int in the layer plan, got {value!r}")
    return repr(value)


def _float(value: object) -> str:
    """A finite float as code."""
    if type(value) is not float or not math.isfinite(value):
        raise CodegenError(f"expected a finite float in the layer plan, got {value!r}")
    return repr(value)


def _pair(value: tuple[int, int]) -> str:
    """(3, 3) -> '3', (3, 1) -> '(3, 1)'."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise CodegenError(f"expected a pair of ints in the layer plan, got {value!r}")
    a, b = _int(value[0]), _int(value[1])
    return a if a == b else f"({a}, {b})"


def _name(value: object) -> str:
    """A layer name as an attribute: a lowercase identifier that is not a keyword or a local."""
    if (not isinstance(value, str) or not _NAME.fullmatch(value) or keyword.iskeyword(value)
            or value in _RESERVED or value in _MODULE_ATTRIBUTES):
        raise CodegenError(f"refusing layer name {value!r}: not a plain lowercase identifier")
    return value


def _lookup(table: dict[str, object], kind: object, what: str):
    """The fixed code for an enumeration value."""
    if not isinstance(kind, str) or kind not in table:
        raise CodegenError(f"unknown {what} {kind!r} (allowed: {', '.join(table)})")
    return table[kind]


def safe_text(value: object) -> str:
    """Free text for the docstring: disallowed characters become '_'."""
    return _UNSAFE_TEXT.sub("_", str(value))


# ---------------------------------------------------------------------------
# __init__: module constructors


def _module(layer) -> str | None:
    """Constructor code of one planned leaf layer; None for a layer that is inline code."""
    match layer:
        case Conv():
            args = [_int(layer.cin), _int(layer.cout), _pair(layer.kernel)]
            if layer.stride != (1, 1):
                args.append(f"stride={_pair(layer.stride)}")
            if layer.padding != (0, 0):
                args.append(f"padding={_pair(layer.padding)}")
            if _int(layer.groups) != "1":
                args.append(f"groups={_int(layer.groups)}")
            return f"nn.Conv2d({', '.join(args)}, bias=False)"
        case Norm():
            return f"nn.BatchNorm2d({_int(layer.channels)})"
        case Activation():
            return _lookup(ACTIVATION_CODE, layer.kind, "activation")
        case Pool():
            return (f"nn.MaxPool2d({_int(layer.kernel)}, stride={_int(layer.stride)}, "
                    f"padding={_int(layer.padding)})")
        case GlobalPool():
            _lookup(GLOBAL_POOL_CODE, layer.kind, "global pooling")
            return None
        case Linear():
            return f"nn.Linear({_int(layer.cin)}, {_int(layer.cout)})"
        case Dropout():
            return f"nn.Dropout({_float(layer.p)})"
    raise CodegenError(f"no code for planned layer {type(layer).__name__}")


def _children(layers: Seq) -> list[tuple[str, object]]:
    """(name, leaf code or nested list) for a container's layers; inline layers are left out."""
    out: list[tuple[str, object]] = []
    for name, layer in layers:
        match layer:
            case Chain():
                out.append((_name(name), _children(layer.layers)))
            case Concat():
                out.append((_name(name), _children(tuple(layer.branches))))
            case _:
                code = _module(layer)
                if code is not None:
                    out.append((_name(name), code))
    return out


def _container(children: list[tuple[str, object]], indent: int) -> list[str]:
    """`Layers(` one child per line, magic trailing comma `)`; nested containers recurse."""
    if not children:
        return [f"{CONTAINER}()"]
    pad = " " * (indent + 4)
    lines = [f"{CONTAINER}("]
    for name, child in children:
        if isinstance(child, list):
            inner = _container(child, indent + 4)
            lines.append(f"{pad}{name}={inner[0]}")
            lines += inner[1:-1]
            lines.append(inner[-1] + ",")
        else:
            lines += _fit(f"{pad}{name}=", child, indent + 4)
    lines.append(" " * indent + ")")
    return lines


def _fit(prefix: str, call: str, indent: int) -> list[str]:
    """`prefix call,` split the way ruff format splits a call that does not fit the line."""
    if len(prefix) + len(call) + 1 <= WIDTH:
        return [f"{prefix}{call},"]
    func, args = call[:-1].split("(", 1)  # leaf calls only: no nested parentheses but tuples
    inner = " " * (indent + 4)
    if len(inner) + len(args) <= WIDTH:
        return [f"{prefix}{func}(", inner + args, " " * indent + "),"]
    parts = re.split(r",\s*(?![^()]*\))", args)  # split on commas outside (a, b) tuples
    return [f"{prefix}{func}(", *(f"{inner}{part}," for part in parts), " " * indent + "),"]


def _assign(target: str, children: list[tuple[str, object]], indent: int = 8) -> list[str]:
    """`target = Layers(...)` as indented lines."""
    body = _container(children, indent)
    return [" " * indent + f"{target} = {body[0]}", *body[1:]]


def _block_children(block: Block) -> list[tuple[str, object]]:
    """A block's layers in the search model's order: branch, after, then the shortcut."""
    children = _children(block.branch + block.after)
    if block.shortcut:
        children.append(("shortcut", _children(block.shortcut)))
    return children


def _init(net: Plan, genotype: Genotype) -> list[str]:
    """The constructor body."""
    lines = ["        super().__init__()"]
    lines += _assign("self.stem", _children(net.stem))
    for (stage_name, blocks), spec in zip(net.stages, genotype.stages, strict=True):
        stage = _name(stage_name)
        lines.append(f"        # {stage}: {_int(spec.depth)} x {_lookup(KINDS, spec.kind, 'kind')},"
                     f" width {_int(spec.width)}, stride {_int(spec.stride)}")
        lines.append(f"        self.{stage} = {CONTAINER}()")
        for block_name, block in blocks:
            lines += _assign(f"self.{stage}.{_name(block_name)}", _block_children(block))
    lines += _assign("self.head", _children(net.head))
    return lines


# ---------------------------------------------------------------------------
# forward: straight-line statements


def _calls(layers: Seq, path: str, src: str, dst: str) -> list[str]:
    """Statements applying `layers` (under attribute `path`) to `src`, result in `dst`."""
    lines: list[str] = []
    for name, layer in layers:
        here = f"{path}.{_name(name)}"
        match layer:
            case Chain():
                lines += _calls(layer.layers, here, src, dst)
            case Concat():
                outs = []
                for branch_name, chain in layer.branches:
                    var = _name(branch_name)
                    lines += _calls(chain.layers, f"{here}.{var}", src, var)
                    outs.append(var)
                lines.append(f"{dst} = torch.cat([{', '.join(outs)}], dim=1)")
            case GlobalPool():
                code, what = _lookup(GLOBAL_POOL_CODE, layer.kind, "global pooling")
                if src != "x" or dst != "x":
                    raise CodegenError("global pooling is only planned in the head")
                lines += [f"# {what}", code]
            case _:
                _module(layer)  # checks the layer's values even though only its name is used
                lines.append(f"{dst} = {here}({src})")
        src = dst
    return lines


def _block_forward(block: Block, path: str) -> list[str]:
    """One block: branch into y (x kept for the shortcut), add, then the after layers."""
    if block.shortcut is None:
        return _calls(block.branch + block.after, path, "x", "x")
    lines = _calls(block.branch, path, "x", "y")
    if block.shortcut:
        lines += _calls(block.shortcut, f"{path}.shortcut", "x", "s")
        lines.append("x = y + s")
    else:
        lines.append("x = y + x")
    return lines + _calls(block.after, path, "x", "x")


def _shortcut_text(block: Block) -> str:
    """What the block adds its branch to, for a comment."""
    if block.shortcut is None:
        return "no shortcut"
    return "1x1 projection shortcut" if block.shortcut else "identity shortcut"


def _returning(lines: list[str]) -> list[str]:
    """End with `return x`, folded into the last assignment (linters flag `x = ...; return x`)."""
    if lines and lines[-1].startswith("x = "):
        return [*lines[:-1], "return " + lines[-1][4:]]
    return [*lines, "return x"]


def _features(net: Plan) -> list[str]:
    """forward_features body."""
    lines = _calls(net.stem, "self.stem", "x", "x")
    for stage_name, blocks in net.stages:
        for block_name, block in blocks:
            path = f"self.{_name(stage_name)}.{_name(block_name)}"
            lines += [f"# {path[5:]}: {_shortcut_text(block)}", *_block_forward(block, path)]
    return _returning(lines)


def _head(net: Plan) -> list[str]:
    """forward_head body; pre_logits returns before dropout and the classifier."""
    cut = next((i for i, (name, _) in enumerate(net.head) if name in ("drop", "fc")), None)
    if cut is None:
        return _returning(_calls(net.head, "self.head", "x", "x"))
    return [*_calls(net.head[:cut], "self.head", "x", "x"), "if pre_logits:", "    return x",
            *_returning(_calls(net.head[cut:], "self.head", "x", "x"))]


# ---------------------------------------------------------------------------
# The file


def _wrap(lines: list[str], indent: str = "") -> list[str]:
    """Docstring lines wrapped to the line length, continuation lines indented further."""
    out = []
    for line in lines:
        lead = line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(line, WIDTH - len(indent), subsequent_indent=lead + "      ",
                             break_on_hyphens=False) or [""]
    return out


def _stem_text(genotype: Genotype) -> str:
    """One line for the stem."""
    stem = genotype.stem
    convs = ", ".join(f"{w}/{s}" for w, s in zip(stem.widths, stem.strides, strict=True))
    text = (f"{len(stem.widths)} x {stem.kernel}x{stem.kernel} conv ({stem.padding}),"
            f" width/stride {convs}" if stem.widths else "no convs")
    return text + (", 3x3/2 max-pool" if stem.pool else "")


def _head_text(genotype: Genotype) -> str:
    """One line for the head."""
    head = genotype.head
    parts = [f"global {head.pooling} pool"] if head.pooling else ["none (features only)"]
    parts += [f"fc {w}" for w in head.fc]
    if head.num_classes:
        parts += ([f"dropout {head.dropout}"] if head.dropout else [])
        parts.append(f"classifier {head.num_classes}")
    return " -> ".join(parts)


def docstring(genotype: Genotype, provenance: Provenance | None) -> list[str]:
    """The module docstring's lines: use, architecture, cost, accuracy, source."""
    c, p = cost(genotype), provenance or Provenance()
    size = f"{genotype.in_channels} x {genotype.resolution} x {genotype.resolution}"
    out = (f"logits for {genotype.head.num_classes} classes" if genotype.head.num_classes
           else "features (no classifier)")
    lines = [
        f"{CLASS_NAME}: a convolutional network found by spectrum-nas, as standalone PyTorch.",
        "",
        "Needs torch only. Layer names match the search model, so its state dict loads with",
        "strict=True:",
        "",
        f"    model = {CLASS_NAME}()",
        "    model.load_state_dict(torch.load('weights.pt', weights_only=True))",
        "    model.eval()",
        "",
        f"Input: N x {size} images, normalised with the training split's per-channel",
        "mean and std" + (": x = (pixels / 255 - MEAN) / STD, with the class's MEAN and STD."
                          if p.mean is not None else ".") + f" Output: {out}.",
        "",
        "Architecture:",
        f"  stem: {_stem_text(genotype)}",
        *describe_arch(genotype).splitlines(),
        f"  head: {_head_text(genotype)}",
        f"Cost: {c.params:,} parameters, {c.macs:,} multiply-adds per image.",
        f"Genotype key: {genotype.key()}",
    ]
    if p.val_acc is not None:
        at = f" (checkpoint of epoch {int(p.epoch)})" if p.epoch is not None else ""
        lines.append(f"Validation accuracy: {float(p.val_acc):.4f}{at}.")
    lines += [f"{label}: {safe_text(value)}" for label, value in
              (("Search run", p.run), ("Trial", p.trial_id), ("Git commit", p.git_sha))
              if value is not None]
    text = "\n".join(lines)
    if '"' in text or "\\" in text:  # could end the docstring early; values are filtered above
        raise CodegenError("docstring text contains a quote or a backslash")
    return _wrap(lines)


def _normalisation(provenance: Provenance | None, channels: int) -> list[str]:
    """MEAN / STD class attributes (pixels / 255 units) when the run recorded them."""
    if provenance is None or provenance.mean is None or provenance.std is None:
        return []
    values = []
    for name, seq in (("MEAN", provenance.mean), ("STD", provenance.std)):
        if len(seq) != channels or (name == "STD" and not all(v > 0 for v in seq)):
            raise CodegenError(f"{name} {list(seq)!r} does not fit {channels} input channels")
        values.append(f"    {name} = ({', '.join(_float(v) for v in seq)},)")
    return values


def _method(signature: str, doc: str, body: list[str]) -> list[str]:
    """A method at class level with its docstring and body."""
    return [f"    def {signature}:", f'        """{doc}"""', *("        " + line for line in body)]


def generate(genotype: Genotype, provenance: Provenance | None = None) -> str:
    """Python source of a torch-only module defining the network of `genotype`."""
    try:  # re-parse strictly: a Genotype built in code has had no type checks yet
        genotype = Genotype.from_dict(genotype.to_dict())
    except (GenotypeError, AttributeError, TypeError) as err:
        raise CodegenError(f"invalid genotype: {err}") from None
    net = plan(genotype)
    doc = docstring(genotype, provenance)
    head = genotype.head
    lines = [
        '"""' + doc[0], *doc[1:], '"""', "", "import torch", "from torch import nn", "", "",
        f"class {CONTAINER}(nn.Module):",
        f'    """Named layers; {CLASS_NAME} calls them one by one, so this has no forward."""',
        "",
        "    def __init__(self, **layers: nn.Module) -> None:",
        "        super().__init__()",
        "        for name, layer in layers.items():",
        "            self.add_module(name, layer)",
        "", "",
        f"class {CLASS_NAME}(nn.Module):",
        '    """Stem -> stages s1.. of blocks b1.. -> head, as in the search model."""',
        "",
        f"    in_channels = {_int(genotype.in_channels)}",
        f"    resolution = {_int(genotype.resolution)}",
        f"    num_classes = {_int(head.num_classes)}",
        *_normalisation(provenance, genotype.in_channels),
        "",
        "    def __init__(self) -> None:",
        *_init(net, genotype),
        "",
        *_method("forward_features(self, x: torch.Tensor) -> torch.Tensor",
                 "Stem and stages: the last feature map.", _features(net)),
        "",
        *_method("forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor",
                 "Pooling, fc layers, classifier; pre_logits stops before the classifier.",
                 _head(net)),
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        "        return self.forward_head(self.forward_features(x))",
    ]
    source = "\n".join(lines) + "\n"
    check_source(source)
    return source


# ---------------------------------------------------------------------------
# The structural check


_ALLOWED_NAMES = {"torch", "nn", "self", "x", "y", "s", "super", "layers", "name", "layer",
                  "pre_logits", "bool", "in_channels", "resolution", "num_classes", "MEAN", "STD",
                  CONTAINER,
                  CLASS_NAME}
_BRANCH_VAR = re.compile(r"branch[0-9]+")


def check_source(source: str) -> None:
    """Reject generated code outside the shapes this module writes (defence in depth)."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        bad = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            bad = None if id(node) in docstrings else "a string literal"
        elif isinstance(node, ast.Import):
            bad = None if [a.name for a in node.names] == ["torch"] else "an import"
        elif isinstance(node, ast.ImportFrom):
            ok = node.module == "torch" and [a.name for a in node.names] == ["nn"]
            bad = None if ok else "an import"
        elif isinstance(node, ast.Name):
            ok = node.id in _ALLOWED_NAMES or _BRANCH_VAR.fullmatch(node.id)
            bad = None if ok else f"the name {node.id!r}"
        elif isinstance(node, ast.Attribute):
            ok = node.attr == "__init__" or not node.attr.startswith("_")
            bad = None if ok else f"the attribute {node.attr!r}"
        elif isinstance(node, ast.Lambda | ast.AsyncFunctionDef | ast.Global | ast.Nonlocal):
            bad = type(node).__name__
        if bad:
            raise CodegenError(f"generated code contains {bad}; refusing to write it")
