"""The answer in words: per factor and stage, the level to take, or that the data cannot
tell, with the size of what is at stake."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nas.answer.effects import FactorEffect

NOUNS = {"groups": "groups", "order": "op order", "mid_act": "mid activation",
         "residual": "residual"}


def architecture_words(levels: Mapping[str, str]) -> str:
    """A point's stage columns ('s2_groups' -> '16', ...) as 's1: 8 groups, dw_pw, mid none,
    residual identity; s2: conv, 4 groups, residual identity; ...' (a block kind other than
    spectrum named, and no op order or mid activation, which only a spectrum block has)."""
    stages: dict[int, dict[str, str]] = {}
    for column, value in levels.items():
        stage, _, name = column.partition("_")
        if stage[1:].isdigit():
            stages.setdefault(int(stage[1:]), {})[name] = str(value)
    parts = []
    for stage in sorted(stages):
        got = stages[stage]
        groups, kind = got.get("groups", ""), got.get("kind", "spectrum")
        separable = kind == "spectrum"
        said = ["" if separable else kind,
                f"{groups} group{'' if groups == '1' else 's'}" if groups else "",
                got.get("order", "") if separable else "",
                f"mid {got['mid_act']}" if "mid_act" in got and separable else "",
                f"residual {got['residual']}" if "residual" in got else ""]
        parts.append(f"s{stage}: " + ", ".join(w for w in said if w))
    return "; ".join(parts)


def stages_label(stages: Sequence[int], pooled: bool = False) -> str:
    """'stage 2', 'stages 1–3 (shared)', 'stages 1, 3 (shared)', 'stages 1–3 (per stage,
    pooled)'."""
    if len(stages) == 1:
        return f"stage {stages[0]}"
    run = list(stages) == list(range(stages[0], stages[-1] + 1))
    listed = f"{stages[0]}–{stages[-1]}" if run else ", ".join(map(str, stages))
    # shared: the stages moved together, one choice; pooled: one stage switched, any of them
    return f"stages {listed} ({'per stage, pooled' if pooled else 'shared'})"


def levels_words(effect: FactorEffect, levels: Sequence[str], widths: Mapping[int, int]) -> str:
    """Levels in words: a run of neighbouring levels as 'a–b', others joined by 'or'; group
    counts say of how many channels ('4–8 groups of 64')."""
    order = [lv for lv in effect.factor.levels if lv in levels]
    positions = [effect.factor.levels.index(lv) for lv in order]
    if len(order) > 2 and positions == list(range(positions[0], positions[-1] + 1)):
        text = f"{order[0]}–{order[-1]}"
    else:
        text = " or ".join(order)
    if effect.factor.field == "groups" and not effect.factor.pooled:
        channels = [str(widths[s]) for s in effect.factor.stages if s in widths]
        text += " groups" + (f" of {'/'.join(channels)}" if channels else "")
    return text


def factor_line(effect: FactorEffect, widths: Mapping[int, int]) -> str:
    """One factor: what to take (resolved), which levels remain (partly), or 'cannot tell'."""
    factor = effect.factor
    head = f"{NOUNS.get(factor.field, factor.field)}, {stages_label(factor.stages, factor.pooled)}"
    pct = round(100 * effect.levels[0].effect.confidence)
    others = effect.levels[1:]
    if not others:
        return f"{head}: only {effect.best} was tried"
    if all(e.effect is None for e in others):
        return f"{head}: cannot estimate (its levels are aliased with another factor's)"
    widest = max(e.effect.half_width for e in others if e.effect is not None)
    if effect.resolved:
        runner = others[0].effect
        best = levels_words(effect, [effect.best], widths)
        return (f"{head}: {best} (+{-100 * runner.estimate:.1f} pt over {others[0].level};"
                f" {pct} % CI {-100 * runner.high:+.1f} to {-100 * runner.low:+.1f})")
    if len(effect.tier) == len(factor.levels):
        return f"{head}: cannot tell (±{100 * widest:.1f} pt)"
    out = [e for e in others if e.level not in effect.tier]
    worst = [e.effect for e in out if e.effect is not None]
    not_part = ""
    if worst:
        not_part = (f"; not {levels_words(effect, [e.level for e in out], widths)}"
                    f" ({100 * max(w.estimate for w in worst):+.1f} pt or worse)")
    return (f"{head}: {levels_words(effect, effect.tier, widths)}"
            f" (cannot tell apart, ±{100 * widest:.1f} pt){not_part}")


def recommend(effects: Sequence[FactorEffect], widths: Mapping[int, int]) -> tuple[str, ...]:
    """One line per factor, in the order the effects come."""
    return tuple(factor_line(e, widths) for e in effects)
