"""`run_search.py export RUN_DIR --out DIR`: one trial as standalone PyTorch code and weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.main import program
from nas.export import OBJECTIVES, TOLERANCE, ExportRequest, export, summary
from nas.results.names import TABLE


def parser() -> argparse.ArgumentParser:
    """Flags of the export action."""
    p = argparse.ArgumentParser(
        prog=f"{program()} export",
        description="Write a searched architecture as standalone PyTorch code (model.py), its"
        " trained weights (weights.pt) and its genotype (genotype.json).")
    p.add_argument("run", type=Path, help="the search run folder (results/<name>)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", help=f"the trial id to export (see {TABLE})")
    which.add_argument("--best", action="store_true",
                       help="the best trial by --objective (the default)")
    p.add_argument("--objective", metavar="{" + ",".join(OBJECTIVES) + ",latency_ms@...}",
                   help="val_acc (default): highest best_val_acc; params / macs / latency_ms,"
                   " or a runtime's latency the run recorded (latency_ms@onnxruntime:b1, from"
                   " the space's [latency]): the cheapest trial within --tolerance of the best"
                   " accuracy")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help="accuracy a cheaper trial may give up, with --objective other than"
                   f" val_acc (default {TOLERANCE:g})")
    p.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    p.add_argument("--force", action="store_true", help="overwrite earlier exports in --out")
    p.add_argument("--onnx", action="store_true",
                   help="also write model.onnx and check it with onnxruntime (needs the"
                   " 'onnx' extra)")
    return p


def main(argv: list[str]) -> int:
    """The export action."""
    args = parser().parse_args(argv)
    done = export(ExportRequest(args.run, args.out, args.trial, args.objective, args.tolerance,
                                args.force, args.onnx))
    print(summary(done, args.run))
    return 0
