"""Tests of nas.results, mirroring its modules."""
