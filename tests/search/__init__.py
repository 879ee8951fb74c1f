"""Tests of nas.search, mirroring its modules."""
