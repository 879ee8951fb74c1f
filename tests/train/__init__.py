"""Tests of nas.train, mirroring its modules."""
