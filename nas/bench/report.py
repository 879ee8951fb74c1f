"""What a bench says: accuracy by every choice, seed-to-seed agreement, how early epochs rank
the final result, and the accuracy/latency front; as Markdown and one figure."""

from __future__ import annotations

import math
import statistics
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from nas.arch.genotype import Genotype
from nas.bench.rank import bootstrap_ci, kendall_tau
from nas.bench.table import Bench, BenchPoint
from nas.results.atomic import atomic_write
from nas.results.names import BENCH_HTML, BENCH_MD, BENCH_PNG

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; the PNG is skipped without it

FACTORS = ("groups", "order", "mid_act", "residual")  # what a spectrum bench varies per stage


def point_frame(bench: Bench) -> pd.DataFrame:
    """One row per point: its choices (stage 1's, shared by every stage in a spectrum bench),
    mean and seed spread of the final accuracy, cost, latency."""
    rows = []
    for p in bench.points.values():
        stage = Genotype.from_json(p.genotype).stages[0]
        finals = [c[-1] for c in p.curves]
        rows.append({"key": p.key, "groups": stage.groups, "position": stage.spectrum_position(),
                     "order": stage.order, "mid_act": stage.mid_act, "residual": stage.residual,
                     "mean": statistics.fmean(finals),
                     "std": statistics.stdev(finals) if len(finals) > 1 else math.nan,
                     "params": p.params, "macs": p.macs, "latency_ms": p.latency_ms})
    return pd.DataFrame(rows).sort_values(["groups", "order", "mid_act", "residual"])


def seed_tau(bench: Bench) -> float:
    """Kendall's tau of seed 0's final accuracies against seed 1's: the noise floor."""
    return kendall_tau(*_seed_finals(bench))


def seed_tau_ci(bench: Bench, samples: int = 1000) -> tuple[float, float]:
    """Bootstrap 95 % interval of seed_tau over resampled points."""
    return bootstrap_ci(*_seed_finals(bench), kendall_tau, samples=samples)


def _seed_finals(bench: Bench) -> tuple[list[float], list[float]]:
    points = list(bench.points.values())
    return [p.curves[0][-1] for p in points], [p.curves[1][-1] for p in points]


def epoch_taus(bench: Bench, keys: set[str] | None = None) -> list[float]:
    """Kendall's tau of the mean accuracy after epoch k against the final one, k = 1..E, over
    every point (or those in `keys`)."""
    points = [p for p in bench.points.values() if keys is None or p.key in keys]
    final = [p.final for p in points]
    return [kendall_tau([p.at(k) for p in points], final) for k in range(1, bench.epochs + 1)]


def epoch_tau_table(bench: Bench, frame: pd.DataFrame) -> str:
    """epoch_taus within each choice of each factor: whether an early ranking fails inside a
    choice or only across choices (a factor that helps early and hurts late)."""
    ks = range(1, bench.epochs)  # the last epoch is the final one: tau 1 by definition
    lines = ["| factor | choice | points | " + " | ".join(f"k={k}" for k in ks) + " |",
             "|---|---|---|" + "---|" * len(ks)]
    for factor in FACTORS:
        for choice, part in frame.groupby(factor, sort=True):
            if len(part) < 3:
                continue
            taus = epoch_taus(bench, set(part["key"]))
            lines.append(f"| {factor} | {choice} | {len(part)} | "
                         + " | ".join(f"{taus[k - 1]:.2f}" for k in ks) + " |")
    return "\n".join(lines)


def pareto(frame: pd.DataFrame) -> pd.DataFrame:
    """The points no other point beats on both accuracy and latency."""
    ordered = frame.sort_values(["latency_ms", "mean"], ascending=[True, False])
    best, keep = -math.inf, []
    for index, row in ordered.iterrows():
        if row["mean"] > best:
            keep.append(index)
            best = row["mean"]
    return ordered.loc[keep]


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.1f}" + ("" if math.isnan(std) else f" ± {100 * std:.1f}")


def pivot_table(frame: pd.DataFrame) -> str:
    """Mean final accuracy ± seed std: a row per op order / mid act / residual, a column per
    group count (stage 1's; every stage shares the position)."""
    groups = sorted(frame["groups"].unique())
    position = frame.groupby("groups")["position"].first()
    head = "| order | mid act | residual | " + " | ".join(
        f"g={g} (pos {position[g]:.1f})" for g in groups) + " |"
    lines = [head, "|---|---|---|" + "---|" * len(groups)]
    for (order, mid, res), part in frame.groupby(["order", "mid_act", "residual"], sort=True):
        cells = []
        for g in groups:
            hit = part[part["groups"] == g]
            cells.append("-" if hit.empty else _pct(hit["mean"].iloc[0], hit["std"].iloc[0]))
        lines.append(f"| {order} | {mid} | {res} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def factor_table(frame: pd.DataFrame) -> str:
    """Per choice of each factor: the mean over its points, their std, best and worst."""
    lines = ["| factor | choice | points | mean % | std over points | best % | worst % |",
             "|---|---|---|---|---|---|---|"]
    for factor in FACTORS:
        for choice, part in frame.groupby(factor, sort=True):
            spread = part["mean"].std() if len(part) > 1 else math.nan
            lines.append(f"| {factor} | {choice} | {len(part)} | {100 * part['mean'].mean():.1f}"
                         f" | {'-' if math.isnan(spread) else f'{100 * spread:.1f}'}"
                         f" | {100 * part['mean'].max():.1f} | {100 * part['mean'].min():.1f} |")
    return "\n".join(lines)


def markdown(bench: Bench, expected: int | None = None) -> str:
    """The whole reading of a bench as Markdown (numbers only, no verdicts)."""
    frame = point_frame(bench)
    best: BenchPoint = bench.best()
    partial = (f" **Partial: {len(bench.points)} of {expected} points so far; every figure"
               " below is over those points only.**" if expected and
               len(bench.points) < expected else "")
    taus = epoch_taus(bench)
    front = pareto(frame)
    lines = [f"## Bench {bench.run_dir.name}",
             f"{len(bench.points)} points x {bench.seeds} seeds x {bench.epochs} epochs,"
             f" {bench.compute_s() / 3600:.2f} h of training.{partial}",
             f"Best point: mean final accuracy {100 * best.final:.2f} %"
             f" ({best.params:,} params).",
             "### Mean final validation accuracy (%) ± std over the seeds",
             "Columns: stage 1's segment count g and its spectrum position (every stage sits at"
             " the same position).", pivot_table(frame),
             "### By factor (each over every point with that choice)", factor_table(frame),
             "### Rank agreement (Kendall's tau over the points)",
             f"Seed 0 against seed 1 (final accuracy): **tau = {seed_tau(bench):.3f}**"
             " [{:.3f}, {:.3f}] (bootstrap 95 % over points) — the noise floor for any ranking"
             " method.".format(*seed_tau_ci(bench)),
             "Mean accuracy after epoch k against the final one: " + ", ".join(
                 f"k={k}: {t:.3f}" for k, t in enumerate(taus, start=1)),
             "The same within each choice of a factor (points that share it):",
             epoch_tau_table(bench, frame),
             "### Accuracy against measured latency: the Pareto front",
             "\n".join(["| groups | order | mid act | residual | mean % | latency ms | params |",
                        "|---|---|---|---|---|---|---|",
                        *(f"| {r['groups']} | {r['order']} | {r['mid_act']} | {r['residual']} |"
                          f" {_pct(r['mean'], r['std'])} | {r['latency_ms']:.2f} |"
                          f" {r['params']:,} |" for _, r in front.iterrows())])]
    return "\n\n".join(lines) + "\n"


def figure(bench: Bench):
    """Mean final accuracy against the spectrum position: a panel per residual choice, a colour
    per mid activation, a dash per op order, the seeds' spread as error bars."""
    from plotly.subplots import make_subplots

    frame = point_frame(bench)
    residuals = sorted(frame["residual"].unique())
    colours = dict(zip(sorted(frame["mid_act"].unique()),
                       ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"), strict=False))
    fig = make_subplots(rows=1, cols=len(residuals), shared_yaxes=True,
                        subplot_titles=[f"residual: {r}" for r in residuals])
    for col, res in enumerate(residuals, start=1):
        for (order, mid), part in frame[frame["residual"] == res].groupby(["order", "mid_act"]):
            part = part.sort_values("position")
            fig.add_scatter(
                x=part["position"], y=100 * part["mean"], mode="lines+markers", row=1, col=col,
                name=f"{order} / mid {mid}", legendgroup=f"{order}/{mid}", showlegend=col == 1,
                line=dict(color=colours.get(mid), dash="solid" if order == "dw_pw" else "dash"),
                error_y=dict(type="data", array=(100 * part["std"]).fillna(0).tolist()),
                text=[f"groups {g}" for g in part["groups"]], hoverinfo="text+y+name")
        fig.update_xaxes(title_text="spectrum position (0 = regular, 1 = depthwise)", row=1,
                         col=col, range=[-0.05, 1.05])
    fig.update_yaxes(title_text="validation accuracy after the last epoch (%)", row=1, col=1)
    fig.update_layout(title=f"{bench.run_dir.name}: accuracy along the spectrum (mean ± std"
                      " over the seeds)", template="plotly_white", width=1100, height=520)
    return fig


def write_png(fig, png: Path, chromium: Path = CHROMIUM) -> bool:
    """A PNG of a plotly figure through headless Chromium; False where it is not installed.

    The page embeds plotly's JavaScript, so the browser needs no network (it gets none)."""
    if not chromium.exists():
        return False
    width, height = fig.layout.width or 1000, fig.layout.height or 600
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "figure.html"
        fig.write_html(page, include_plotlyjs=True, config={"displayModeBar": False})
        shot = Path(tmp) / "figure.png"
        done = subprocess.run([str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-background-networking", "--disable-component-update",
                               "--no-first-run", "--hide-scrollbars",
                               f"--window-size={width + 20},{height + 20}",
                               f"--screenshot={shot}", page.as_uri()],
                              capture_output=True, timeout=120)
        if done.returncode != 0 or not shot.is_file():
            return False
        atomic_write(png, lambda dest: dest.write_bytes(shot.read_bytes()))
    return True


def write_report(bench: Bench, expected: int | None = None) -> Path:
    """bench.md, bench.html and (with Chromium) bench.png in the bench folder; returns the
    Markdown's path."""
    fig = figure(bench)
    html = fig.to_html(include_plotlyjs="cdn")
    atomic_write(bench.run_dir / BENCH_HTML, lambda tmp: tmp.write_text(html))
    drawn = write_png(fig, bench.run_dir / BENCH_PNG)
    text = markdown(bench, expected)
    if drawn:
        text += f"\n![accuracy along the spectrum]({BENCH_PNG})\n"
    md = bench.run_dir / BENCH_MD
    atomic_write(md, lambda tmp: tmp.write_text(text))
    return md
