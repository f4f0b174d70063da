"""Training: recipes, the `Trainer` loop, hooks, losses, optimizer / schedule, sampler, checkpoints, DDP.

    from poseadapt.train import load_recipe, run_recipe
    result = run_recipe(load_recipe("synth-adult-tiny", ["schedule.epochs=2"]), "runs/tiny")

Where things live: `recipe.py` (YAML schema), `build.py` (recipe -> Trainer, all up-front checks), `engine.py`
(the loop), `hooks.py` (extension points), `losses.py`, `optim.py` (layer decay, schedule), `sampler.py`
(dataset mixing), `checkpointing.py`, `ema.py`, `validate.py` (AP during training), `logging.py`,
`distributed.py`. Adaptation methods live in `poseadapt.adapt.methods`; the engine only calls their interface.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Recipe": "recipe",
    "load_recipe": "recipe",
    "recipe_from_dict": "recipe",
    "builtin_recipes": "recipe",
    "build_trainer": "build",
    "run_recipe": "build",
    "Trainer": "engine",
    "TrainResult": "engine",
    "Hook": "hooks",
    "LossTerm": "losses",
    "keypoint_mse": "losses",
    "MixedDataset": "sampler",
    "MixedSampler": "sampler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'poseadapt.train' has no attribute '{name}'")
    return getattr(importlib.import_module(f"poseadapt.train.{module}"), name)
