"""wavegen: a WaveNet that plays harpsichord music sample by sample, from the 88-key text format."""

__version__ = "0.1.0"
