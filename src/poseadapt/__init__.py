"""poseadapt: adapt pre-trained pose-estimation models to new populations and keypoint sets.

The top-level package imports nothing heavy, so `poseadapt --help`, `schemas` and `score` stay fast
and never import torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
