"""Scoring sub-networks on Ray workers: each holds the trained supernet and the scoring data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nas.arch.genotype import Genotype
from nas.data import ImageSet, Splits
from nas.search.space.types import Space
from nas.supernet.model import SuperNet
from nas.supernet.score import Scorer, Scores, batches, one_by_one, supernet_scorer
from nas.train.config import TrainConfig


@dataclass(frozen=True)
class ScoringJob:
    """What scoring needs: the space, the trained weights, the images and the settings."""

    space: Space
    state: dict[str, torch.Tensor]  # the supernet's state_dict, on the CPU
    calibration: ImageSet
    val: ImageSet
    mean: tuple[float, ...]
    std: tuple[float, ...]
    cfg: TrainConfig
    precision: str  # resolved: "fp32" or "bf16"
    score_by: str  # one of nas.supernet.score.SCORE_BY


def scoring_job(supernet: SuperNet, space: Space, splits: Splits, calibration: ImageSet,
                cfg: TrainConfig, precision: str, score_by: str) -> ScoringJob:
    """The job of scoring with a trained supernet (its weights copied to the CPU)."""
    state = {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
    return ScoringJob(space, state, calibration, splits.val, tuple(splits.mean),
                      tuple(splits.std), cfg, precision, score_by)


def local_scorer(job: ScoringJob, device: torch.device | str) -> Scorer:
    """The job's scorer in this process on `device`: a supernet rebuilt from its weights."""
    net = SuperNet(job.space)
    net.load_state_dict(job.state)
    net.to(device)
    calibration = batches(job.calibration, job, job.cfg, device, job.cfg.batch_size)
    val = batches(job.val, job, job.cfg, device, job.cfg.eval_batch_size)
    return one_by_one(supernet_scorer(net, calibration, val, job.precision, job.score_by))


class _Worker:
    """One Ray actor: the supernet and its scoring data, built once, scoring many points."""

    def __init__(self, job: ScoringJob, device: str, threads: int):
        torch.set_num_threads(threads)  # Ray sets OMP threads; torch reads its own setting
        self.scorer = local_scorer(job, device)

    def score(self, archs: list[Genotype]) -> list[Scores]:
        return self.scorer(archs)


class WorkerPool:
    """A batch scorer on `workers` Ray actors of `cpus` CPUs (torch threads) and `gpus` of a GPU
    each (several share one GPU); a batch goes out a point per call, results in its order."""

    def __init__(self, job: ScoringJob, workers: int, cpus: float, gpus: float):
        import ray
        from ray.util import ActorPool

        remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(_Worker)
        shared = ray.put(job)  # one copy of the weights and images in the object store
        device = "cuda" if gpus > 0 else "cpu"
        self.actors = [remote.remote(shared, device, max(1, int(cpus))) for _ in range(workers)]
        self.pool = ActorPool(self.actors)

    def __call__(self, archs: list[Genotype]) -> list[Scores]:
        return [s for (s,) in self.pool.map(lambda a, arch: a.score.remote([arch]), archs)]

    def close(self) -> None:
        """End the actors (their CPUs go back to the cluster, e.g. for the verification)."""
        import ray

        for actor in self.actors:
            ray.kill(actor)
