"""Space files by path or by a bundled space's name."""

from pathlib import Path

import pytest

from nas.search.space import load
from nas.search.space.load import space_file
from nas.search.space.types import SpaceError


def test_a_path_passes_through_unchanged(tmp_path):
    existing = tmp_path / "mine"
    existing.write_text("")
    assert space_file(existing) == existing
    assert space_file(str(existing)) == existing
    assert space_file("search_spaces/nope.toml") == Path("search_spaces/nope.toml")
    assert space_file("nope.toml") == Path("nope.toml")


def test_a_bare_name_is_the_bundled_file(tmp_path, monkeypatch):
    (tmp_path / "tiny.toml").write_text("")
    monkeypatch.setattr(load, "bundled_spaces", lambda: tmp_path)
    assert space_file("tiny") == tmp_path / "tiny.toml"
    assert isinstance(space_file("tiny"), Path)


def test_an_unknown_name_lists_the_bundled_spaces_in_one_line(tmp_path, monkeypatch):
    for name in ("b_space", "a_space"):
        (tmp_path / f"{name}.toml").write_text("")
    (tmp_path / "notes.md").write_text("")
    monkeypatch.setattr(load, "bundled_spaces", lambda: tmp_path)
    with pytest.raises(SpaceError) as err:
        space_file("nope")
    message = str(err.value)
    assert message == ("nope: no such search-space file or bundled space"
                       " (bundled: a_space, b_space)")
    assert "\n" not in message
