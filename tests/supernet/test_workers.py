"""Scoring on Ray workers gives what scoring in this process gives, in the batch's order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.searchkit import SUPERNET, write_space

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter, as the product does (one Ray cluster per process): in the long
# pytest process, after other tests' clusters, ray.init has been seen to hang.
SCRIPT = """
import json, sys
import torch
from nas.data import ImageSet
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from nas.search.cluster import start_ray, stop_ray
from nas.supernet.model import SuperNet
from nas.supernet.paths import enumerate_points
from nas.supernet.workers import ScoringJob, WorkerPool, local_scorer

def images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                    torch.randint(0, 10, (n,), generator=g), tuple("abcdefghij"))

space = load_space(sys.argv[1])
torch.manual_seed(0)
net = SuperNet(space)
job = ScoringJob(space, net.state_dict(), images(48, 0), images(40, 1), (0.5,) * 3,
                 (0.25,) * 3, space.train, "fp32", "val_loss")
archs = [genotype(space, p) for p in enumerate_points(space)[::9]]
local = local_scorer(job, "cpu")(archs)
start_ray()
try:
    pool = WorkerPool(job, workers=2, cpus=1, gpus=0)
    remote = pool(archs)
    pool.close()
finally:
    stop_ray()
print(json.dumps({"local": local, "remote": remote}))
"""


def test_worker_pool_scores_equal_local_scores(tmp_path):
    space = write_space(tmp_path, SUPERNET)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(space)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    local, remote = found["local"], found["remote"]
    assert len({s["score"] for s in local}) > 1  # the points differ, so order is checked
    assert all(s["score"] == -s["val_loss"] and 0 <= s["val_acc"] <= 1 for s in local)
    assert [s["val_acc"] for s in remote] == [s["val_acc"] for s in local]
    # one thread per worker, two here: float sums in another order
    for key in ("score", "val_loss"):
        assert [s[key] for s in remote] == pytest.approx([s[key] for s in local], rel=1e-5)
