"""Pose models: the ViT backbone (with optional ViTPose++ experts), heads, `PoseModel` and `create_model`."""

from poseadapt.models.factory import create_model, list_models, vit_config
from poseadapt.models.heads import HeadSet, HeatmapHead, HeatmapHeadConfig, SimCCHead, SimCCHeadConfig
from poseadapt.models.pose_model import HeadSpec, PoseModel, PoseModelConfig
from poseadapt.models.vit import VisionTransformer, ViTConfig

__all__ = [
    "HeadSet",
    "HeadSpec",
    "HeatmapHead",
    "HeatmapHeadConfig",
    "PoseModel",
    "PoseModelConfig",
    "SimCCHead",
    "SimCCHeadConfig",
    "ViTConfig",
    "VisionTransformer",
    "create_model",
    "list_models",
    "vit_config",
]
