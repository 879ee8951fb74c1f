"""Tests of nas.data, mirroring its modules."""
