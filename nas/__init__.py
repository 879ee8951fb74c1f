"""spectrum-nas: neural architecture search along the convolution spectrum."""

__version__ = "0.1.0"
