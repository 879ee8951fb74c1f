"""One-line text of a stage and of a whole architecture."""

from __future__ import annotations

from nas.arch.genotype import Genotype, Stage


def describe_stage(stage: Stage) -> str:
    """One line: kind, groups and spectrum position, the toggles that matter for the kind."""
    text = f"{stage.kind:<9} w{stage.width:<4} d{stage.depth} k{stage.kernel}"
    if stage.kind != "inception":
        text += f" groups {stage.groups}/{stage.grouped_width()}"
    text += f" (pos {stage.spectrum_position():.2f})"
    if stage.kind == "spectrum":
        text += f" {stage.order} mid={stage.mid_act}"
    return text + f" residual={stage.residual} {stage.act_order}-act"


def describe_arch(arch: Genotype, indent: str = "  ") -> str:
    """Every stage on its own line."""
    return "\n".join(f"{indent}s{i}: {describe_stage(s)}" for i, s in enumerate(arch.stages, 1))


def millions(n: float) -> str:
    """12_345_678 -> '12.35M' (MACs and parameter counts in text)."""
    return f"{n / 1e6:.2f}M"
