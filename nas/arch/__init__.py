"""The architecture: genotype -> plan -> model / cost / code. Imports nothing else of nas."""
