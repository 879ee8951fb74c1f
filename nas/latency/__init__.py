"""Inference latency on the runtimes users deploy: settings, runtimes, measurement, a model."""
