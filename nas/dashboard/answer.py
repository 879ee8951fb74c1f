"""The dashboard's first section: the run's answer (answer.json) — the tier, the pick, the
factor recommendations, what it rests on and cost."""

from __future__ import annotations

from html import escape
from typing import Any

from nas.answer.words import architecture_words
from nas.dashboard.overview import section
from nas.results.names import ANSWER_MD


def answer_section(answer: dict[str, Any]) -> str:
    """The answer as HTML: every value escaped (answer.json is a file like any other)."""
    pct = round(100 * float(answer.get("confidence", 0.9)))
    noise = answer.get("noise") or {}
    sd = noise.get("sd")
    said = (f"seed noise sd {100 * sd:.2f} pt ({escape(str(noise.get('source', '')))})"
            if isinstance(sd, int | float) else "no seed noise measured: nothing is separable")
    tier = answer.get("tier") or []
    why = answer.get("pick_words", "")  # the sentence answer.md says it in (render.py)
    head = (f'<p class="answer-pick">Practical pick: <code>{escape(str(answer.get("pick")))}'
            f"</code>, {escape(str(why))} at {pct} % ({said}; {answer.get('points')} points"
            f" judged after {answer.get('fidelity')} epochs).</p>")
    rows = "".join(_tier_row(e, e.get("key") == answer.get("pick")) for e in tier)
    table = (f'<table class="answer-tier"><thead><tr><th>point</th><th>accuracy % (mean,'
             f" {pct} % CI)</th><th>seeds</th><th>leader − point (pt)</th><th>params</th>"
             "<th>MACs</th><th>latency ms</th><th>per stage</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>")
    words = "".join(f"<li>{escape(str(w))}</li>" for w in answer.get("words") or [])
    cost = answer.get("cost") or {}
    rests = (f'<p class="note">Rests on: {escape(str(answer.get("source", "")))}. Cost:'
             f" {float(cost.get('core_s', 0)):,.0f} core-seconds, {cost.get('trials')} trials,"
             f" {cost.get('seeds')} seeds. The whole answer, with every factor level's"
             f" interval: {ANSWER_MD}.</p>")
    return section("answer", "Answer", "Which convolution, with how much confidence: the points"
                   " the seeds cannot tell apart, the cheapest of them, and what each factor is"
                   " worth.", head + table + f'<ul class="answer-words">{words}</ul>' + rests)


def _tier_row(entry: dict[str, Any], pick: bool) -> str:
    mean, gap = entry.get("mean") or {}, entry.get("gap")
    levels = architecture_words(entry.get("levels") or {})
    cells = [f"<code>{escape(str(entry.get('key')))}</code>{' (pick)' if pick else ''}",
             _interval(mean), escape(str(entry.get("seeds"))),
             "leader" if not gap else _interval(gap, True),
             _count(entry.get("params")), _count(entry.get("macs")), _ms(entry.get("latency_ms")),
             escape(levels)]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _interval(i: dict[str, Any], sign: bool = False) -> str:
    return (f"{_pt(i.get('estimate'), sign)} [{_pt(i.get('low'), sign)},"
            f" {_pt(i.get('high'), sign)}]")


def _pt(value: Any, sign: bool = False) -> str:
    if not isinstance(value, int | float):
        return "±∞"  # answer.json writes an unbounded interval's ends as null
    return f"{100 * value:+.2f}" if sign else f"{100 * value:.2f}"


def _count(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else "—"


def _ms(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "—"
