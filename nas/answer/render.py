"""The answer as answer.md (for people) and answer.json (for the dashboard and scripts)."""

from __future__ import annotations

import json
import math

from nas.answer.answer import Answer, TierEntry
from nas.answer.effects import FactorEffect
from nas.answer.stats import Interval
from nas.answer.words import NOUNS, architecture_words, stages_label
from nas.results.names import ANSWER_MD

CONSOLE_TIER = 5  # tier rows the console shows (the pick besides)


def render_markdown(answer: Answer) -> str:
    """answer.md: the pick, the tier, the factors, the words, what it rests on and cost."""
    pct = round(100 * answer.confidence)
    n = answer.noise
    noise = (f"seed noise sd {100 * n.sd:.2f} pt ({_df(n.df)} df, {n.source})" if n.known
             else "no seed noise measured yet (no point has two seeds): nothing is separable")
    lines = [
        "# The answer: which convolution, with how much confidence", "",
        f"**Practical pick: `{answer.pick}`** — {_pick_words(answer, '`')} at"
        f" {pct} % ({noise}; {answer.points} points judged after {answer.fidelity} epochs).",
        "", f"## Top tier ({pct} % intervals)", "",
        f"| point | accuracy % (mean, {pct} % CI) | seeds | leader − point (pt) | params"
        " | MACs | latency ms | per stage |",
        "|---|---|---|---|---|---|---|---|"]
    lines += [_tier_row(e) for e in answer.tier]
    lines += ["", f"## Per factor and stage (epoch {answer.effects_fidelity},"
              f" {_method(answer.effects_method)}; {pct} % intervals)", ""]
    if answer.effects:
        lines += ["| factor | stages | level | level − best (pt) | points | in the best tier |",
                  "|---|---|---|---|---|---|"]
        for effect in answer.effects:
            lines += _effect_rows(effect)
        if any(e.factor.pooled for e in answer.effects):
            lines += ["", "Too few points for an effect per stage: each field is pooled over the"
                      " stages where it varies, an effect being what switching one stage from"
                      " the best level to another is worth, taken to be alike in every stage;"
                      " group counts by their place on the spectrum (1, between, one per"
                      " channel)."]
    else:
        lines.append("No factor varies among these points.")
    lines += ["", "## Recommendation", "", *(f"- {w}" for w in answer.words)]
    c = answer.cost
    lines += ["", "## What it rests on", "",
              f"- data: {answer.source or 'the trials table'}",
              f"- tier: {answer.points} points at the full budget ({answer.fidelity} epochs);"
              f" effects: every trial measured after {answer.effects_fidelity} epochs",
              f"- cost: {c.core_s:,.0f} core-seconds ({c.core_s / 3600:.1f} core-hours),"
              f" {c.trials} trials, {c.seeds} seeds trained", ""]
    return "\n".join(lines)


def render_console(answer: Answer) -> str:
    """The answer in a few lines for the end of a search: pick, tier, words, cost."""
    pct = round(100 * answer.confidence)
    n = answer.noise
    noise = f"seed sd {100 * n.sd:.2f} pt" if n.known else "seed noise not measured"
    lines = [f"Answer ({pct} % confidence, {noise}; {answer.points} points after"
             f" {answer.fidelity} epochs): practical pick {answer.pick}, {_pick_words(answer)}"]
    pick = next(e for e in answer.tier if e.key == answer.pick)
    lines.append(f"  the pick per stage: {architecture_words(pick.levels)}")
    # the leader's closest rivals and the pick; a long tier in full is answer.md's job
    shown = [e for i, e in enumerate(answer.tier) if i < CONSOLE_TIER or e.key == answer.pick]
    for e in shown:
        gap = "leader" if e.gap is None else f"{_interval(e.gap)} pt behind"
        lines.append(f"  {e.key}: {100 * e.mean.estimate:.2f} % [{_pt(e.mean.low)},"
                     f" {_pt(e.mean.high)}] over {e.seeds} seed(s), {gap}; {_count(e.params)}"
                     f" params, {_count(e.macs)} MACs, {_ms(e.latency_ms)} ms")
    if len(shown) < len(answer.tier):
        lines.append(f"  ... and {len(answer.tier) - len(shown)} more tied ({ANSWER_MD})")
    lines += [f"  - {w}" for w in answer.words]
    c = answer.cost
    lines.append(f"  cost: {c.core_s:,.0f} core-seconds, {c.trials} trials, {c.seeds} seeds")
    return "\n".join(lines)


def _pick_words(answer: Answer, code: str = "") -> str:
    """Why the pick: the tier's cheapest, or the leader when no seed noise says what is tied
    (`code`: the quote around a point's key, '`' in Markdown)."""
    if not answer.noise.known:
        return (f"the leader: no point has two seeds, so none of the {len(answer.tier)} can be"
                " told apart and the cheapest would be a guess")
    return (f"the cheapest by {answer.pick_by} of the {len(answer.tier)} point(s) not"
            f" separable from the leader {code}{answer.leader}{code}")


def _tier_row(e: TierEntry) -> str:
    gap = "leader" if e.gap is None else _interval(e.gap)
    levels = architecture_words(e.levels)
    return (f"| `{e.key}` | {100 * e.mean.estimate:.2f} [{_pt(e.mean.low)}, {_pt(e.mean.high)}]"
            f" | {e.seeds} | {gap} | {_count(e.params)} | {_count(e.macs)} | {_ms(e.latency_ms)}"
            f" | {levels} |")


def _effect_rows(effect: FactorEffect) -> list[str]:
    noun, where = NOUNS.get(effect.factor.field, effect.factor.field), stages_label(
        effect.factor.stages, effect.factor.pooled)
    rows = []
    for e in effect.levels:
        if e.level == effect.best:
            value = "best"
        elif e.effect is None:
            value = "not estimable"
        else:
            value = _interval(e.effect)
        mark = "yes" if e.level in effect.tier else "no"
        rows.append(f"| {noun} | {where} | {e.level} | {value} | {e.points} | {mark} |")
    return rows


def _interval(i: Interval) -> str:
    return f"{100 * i.estimate:+.2f} [{_pt(i.low, True)}, {_pt(i.high, True)}]"


def _pt(value: float, sign: bool = False) -> str:
    if math.isinf(value):
        return "−∞" if value < 0 else "+∞" if sign else "∞"
    return f"{100 * value:+.2f}" if sign else f"{100 * value:.2f}"


def _count(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f}"


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}"


def _df(df: float) -> str:
    return "∞" if math.isinf(df) else f"{df:g}"


def _method(method: str) -> str:
    return {"pooled": "OLS on point means, pooled seed-noise intervals",
            "robust": "OLS on point means, HC2-robust intervals",
            "pairs": "matched pairs"}.get(method, method)


def to_dict(answer: Answer) -> dict:
    """answer.json's content: plain JSON (no inf or NaN)."""
    return {
        "leader": answer.leader, "pick": answer.pick, "pick_by": answer.pick_by,
        "pick_words": _pick_words(answer),
        "confidence": answer.confidence, "points": answer.points, "fidelity": answer.fidelity,
        "noise": answer.noise.to_dict(),
        "tier": [{"key": e.key, "mean": e.mean.to_dict(), "seeds": e.seeds,
                  "gap": e.gap.to_dict() if e.gap else None, "params": e.params,
                  "macs": e.macs, "latency_ms": e.latency_ms, "levels": e.levels}
                 for e in answer.tier],
        "effects": {"method": answer.effects_method, "fidelity": answer.effects_fidelity,
                    "factors": [_effect_dict(e) for e in answer.effects]},
        "words": list(answer.words),
        "cost": {"core_s": answer.cost.core_s, "trials": answer.cost.trials,
                 "seeds": answer.cost.seeds},
        "source": answer.source,
    }


def _effect_dict(effect: FactorEffect) -> dict:
    return {"factor": effect.factor.name, "field": effect.factor.field,
            "stages": list(effect.factor.stages), "pooled": effect.factor.pooled,
            "best": effect.best,
            "tier": list(effect.tier), "resolved": effect.resolved,
            "levels": [{"level": e.level, "points": e.points,
                        "effect": e.effect.to_dict() if e.effect else None}
                       for e in effect.levels]}


def to_json(answer: Answer) -> str:
    """answer.json's text (strict JSON: allow_nan=False)."""
    return json.dumps(to_dict(answer), indent=1, allow_nan=False, ensure_ascii=False)
