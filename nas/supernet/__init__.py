"""The spectrum supernet: one weight-sharing network that scores every point of a spectrum space."""
