"""poseadapt: adapt pre-trained pose-estimation models to new populations and keypoint sets.

The top-level package imports nothing heavy, so `poseadapt --help`, `schemas` and `score` stay fast
and never import torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> object:
    """Lazy `poseadapt.load_model`: torch is imported only when a model is actually loaded."""
    if name == "load_model":
        from poseadapt.interop.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'poseadapt' has no attribute {name!r}")
