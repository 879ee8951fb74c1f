"""The shared search-space fixtures: one base plus overrides, rendered as TOML that reads back."""

import tomllib

import pytest

from tests.bench.test_replay import SEARCH
from tests.bench.test_reuse import GAMMA1, RESIDUAL
from tests.benchmarks.test_residual_init import WITH_RESIDUAL
from tests.benchmarks.test_search_strategies import WIDE
from tests.searchkit import (
    BASE,
    BENCH,
    BROKEN,
    FOLDER,
    STUDY,
    SUPERNET,
    TINY,
    render,
    variant,
    write_space,
)

FIXTURES = {"BASE": BASE, "TINY": TINY, "BROKEN": BROKEN, "STUDY": STUDY, "FOLDER": FOLDER,
            "BENCH": BENCH, "SUPERNET": SUPERNET, "RESIDUAL": RESIDUAL, "GAMMA1": GAMMA1,
            "SEARCH": SEARCH, "WITH_RESIDUAL": WITH_RESIDUAL, "WIDE": WIDE}


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_renders_to_toml_that_reads_back_the_same(name):
    assert tomllib.loads(render(FIXTURES[name])) == FIXTURES[name]


def test_the_renderer_writes_every_value_type_the_fixtures_use():
    space = {"name": "a \"quoted\" é", "t": {"on": True, "off": False, "n": -3, "x": 1e12,
                                             "tiny": 1e-5, "inf": float("inf"),
                                             "nested": [[8, 16], 16, "depthwise"], "empty": [],
                                             "inline": {"spectrum": 0.0, "order": "dw_pw"},
                                             "odd key": 1}}
    assert tomllib.loads(render(space)) == space


def test_an_override_merges_into_its_table_replaces_values_and_none_removes():
    changed = variant(TINY, train={"lr": 0.2, "warmup_epochs": None}, references=None,
                      macro={"widths": [[8, 16], 16]})
    assert changed["train"] == {"epochs": 4, "batch_size": 100, "lr": 0.2}
    assert changed["macro"]["widths"] == [[8, 16], 16] and changed["macro"]["depths"] == [1, 1]
    assert "references" not in changed and changed["data"] == TINY["data"]
    assert TINY["train"]["lr"] == 0.1 and TINY["macro"]["widths"] == [8, 16]  # base untouched
    assert "warmup_epochs" in TINY["train"] and "references" in TINY


def test_write_space_renders_a_space_and_writes_text_as_given(tmp_path):
    assert tomllib.loads(write_space(tmp_path, TINY).read_text()) == TINY
    assert write_space(tmp_path, "[search]\ntrials = 5\n", "t.toml").read_text() == (
        "[search]\ntrials = 5\n")
