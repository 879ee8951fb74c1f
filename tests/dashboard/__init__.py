"""Tests of nas.dashboard, mirroring its modules."""
