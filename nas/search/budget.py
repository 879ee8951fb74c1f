"""A compute budget for a whole search: stop once its trials have trained that long in total."""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper


class ComputeBudget(Stopper):
    """Ends the search when the trials' training seconds (train_s, summed) reach `seconds`.

    A bench replay reports its simulated seconds as train_s, so the same budget cuts a replay
    where a real search of that compute would have ended.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.spent: dict[str, float] = {}  # trial id -> its train_s so far

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.spent[trial_id] = float(result.get("train_s") or 0.0)
        return False

    def stop_all(self) -> bool:
        return sum(self.spent.values()) >= self.seconds
