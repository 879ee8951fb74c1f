"""The [verify] settings of a race: its confidence, seed cap, core-second budget, noise and
held-out images."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NOISE_SOURCES = ("pooled", "prior")
EARLY_RULES = ("noise", "never")


class VerifyError(ValueError):
    """A [verify] setting out of range; the message names the field."""


@dataclass(frozen=True)
class VerifySettings:
    """How a race verifies a front end's result (every field is a [verify] key)."""

    confidence: float = 0.9  # a pair is resolved when this interval of the gap excludes zero
    max_seeds_per_point: int = 4  # full-budget seeds per point, front end included
    budget_core_s: float = math.inf  # core-seconds the verification runs may spend
    noise: str = "pooled"  # pooled: the race's own seeds (+ the prior); prior: the prior alone
    noise_prior_sd: float = 0.0  # a seed sd measured elsewhere (a bench); 0: none
    noise_prior_df: float = 0.0  # its degrees of freedom (inf: known exactly)
    early: str = "noise"  # noise: ASHA-stopped points within the epoch-k noise race; never
    held_out: int = 0  # training images neither train nor val uses, to score full-budget
    # results on (the race and the tier); 0: the validation split scores them

    def check(self) -> VerifySettings:
        """Itself, or a VerifyError naming the first field out of range."""
        if not 0.5 <= self.confidence < 1:
            _fail("confidence", f"{self.confidence} must lie in [0.5, 1)")
        if self.max_seeds_per_point < 2:
            _fail("max_seeds_per_point", f"{self.max_seeds_per_point} must be >= 2 (one seed"
                  " cannot be compared)")
        if not self.budget_core_s >= 0:  # NaN fails too
            _fail("budget_core_s", f"{self.budget_core_s} must be >= 0 (inf: no budget)")
        if self.noise not in NOISE_SOURCES:
            _fail("noise", f"{self.noise!r} must be one of {', '.join(NOISE_SOURCES)}")
        if not (self.noise_prior_sd >= 0 and math.isfinite(self.noise_prior_sd)):
            _fail("noise_prior_sd", f"{self.noise_prior_sd} must be a finite number >= 0")
        if not self.noise_prior_df >= 0:
            _fail("noise_prior_df", f"{self.noise_prior_df} must be >= 0 (inf: known)")
        if (self.noise_prior_sd > 0) != (self.noise_prior_df > 0):
            _fail("noise_prior_df", "give noise_prior_sd and noise_prior_df together")
        if self.noise == "prior" and self.noise_prior_df == 0:
            _fail("noise", "'prior' needs noise_prior_sd and noise_prior_df")
        if self.early not in EARLY_RULES:
            _fail("early", f"{self.early!r} must be one of {', '.join(EARLY_RULES)}")
        if self.held_out < 0:
            _fail("held_out", f"{self.held_out} must be >= 0 (0: none)")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (inf as the string 'inf')."""
        return {k: "inf" if isinstance(v, float) and math.isinf(v) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerifySettings:
        """A [verify] table (or to_dict's output) as checked settings; unknown keys refused."""
        known = {f.name: f.type for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                _fail(key, f"unknown setting (allowed: {', '.join(known)})")
        values = {}
        for key, value in data.items():
            default = getattr(cls, key)
            if isinstance(default, str):
                ok = isinstance(value, str)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:  # a float: a number, or 'inf' (JSON has no infinity)
                ok = value == "inf" or (isinstance(value, int | float)
                                        and not isinstance(value, bool))
            if not ok:
                _fail(key, f"{value!r} is not a {type(default).__name__}")
            values[key] = float(value) if isinstance(default, float) else value
        return cls(**values).check()


def _fail(field: str, message: str) -> None:
    raise VerifyError(f"[verify].{field}: {message}")
