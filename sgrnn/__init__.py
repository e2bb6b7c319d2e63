"""sgrnn: truncated BPTT with and without synthetic gradients (DNI, Jaderberg et al. 2017)."""

__version__ = "0.1.0"
