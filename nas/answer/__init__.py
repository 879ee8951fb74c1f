"""The answer to a search: which points are not separable from the leader, racing seeds until
they are, and what each factor of the convolution spectrum is worth, with intervals."""
