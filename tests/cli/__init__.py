"""Tests of nas.cli, mirroring its modules."""
