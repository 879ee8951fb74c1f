"""Tests of nas.bench, mirroring its modules."""
