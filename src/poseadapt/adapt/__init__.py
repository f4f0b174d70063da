"""Adapting a pre-trained pose model: the adaptation-method interface (`method.py`) and the methods themselves
(`methods/`, one file each). The training engine (`poseadapt.train`) calls into this package; nothing here imports
the engine, so the dependency direction stays models <- adapt <- train.
"""

from poseadapt.adapt.method import AdaptContext, DataStream, Method, MethodOptions, StepOutputs

__all__ = ["AdaptContext", "DataStream", "Method", "MethodOptions", "StepOutputs"]
