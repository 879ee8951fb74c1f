"""Training: the device-resident batches, the loop, latency measurement."""
