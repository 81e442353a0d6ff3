"""MTAN (Liu, Johns, Davison, CVPR 2019): network, losses, weighting, metrics, data and one training run."""

from mtan.model import MTAN

__all__ = ["MTAN"]
__version__ = "0.1.0"
