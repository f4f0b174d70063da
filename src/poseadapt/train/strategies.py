"""Fine-tuning strategies: recipe `finetune.strategy` name -> a factory of trainer hooks.

A strategy is hooks and nothing else: freezing blocks or wrapping LoRA adapters happens in `Hook.setup` (before
the optimizer is built), a head-first-then-full schedule flips `requires_grad` in `on_epoch_start` and records its
stage in `state_dict` (so `--resume` continues in the right stage). Rehearsal (`finetune.rehearsal`, with any
strategy) is built by `poseadapt.train.rehearsal`: the source set joins the mix and the teacher is attached to this
hook's Finetuner, whose `before_step` pseudo-labels the batch. A factory gets the validated recipe (its `finetune`
section keeps any extra keys the strategy defines) and returns the hooks; plain "full" fine-tuning needs none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from poseadapt.errors import PoseAdaptError
from poseadapt.train.hooks import Hook

StrategyFactory = Callable[[Any], Sequence[Hook]]


class FinetuneHook(Hook):
    """Runs `poseadapt.adapt.finetune.Finetuner` (freezing, LoRA, stages, rehearsal pseudo-labels) in the loop."""

    name = "finetune"  # type: ignore[assignment]  # the key of its stage in training checkpoints

    def __init__(self, section: dict[str, Any]) -> None:
        from poseadapt.adapt.finetune import FinetuneConfig, Finetuner

        self.finetuner = Finetuner(FinetuneConfig.from_section(section))

    def setup(self, trainer: Any) -> None:
        ft = self.finetuner
        trainer.module = ft.prepare(trainer.module)  # in place: LoRA wrapping keeps the module object
        if ft.cfg.strategy == "layer_decay":  # the strategy's rate goes to the optimizer the engine builds
            from poseadapt.adapt.finetune.freeze import effective_layer_decay

            trainer.recipe.optim.layer_decay = effective_layer_decay(ft.cfg, trainer.recipe.optim.layer_decay)

    def on_epoch_start(self, trainer: Any) -> None:
        self.finetuner.train_mode(trainer.module)
        if self.finetuner.on_epoch_start(trainer.module, trainer.epoch):
            trainer.log_metrics({"finetune/stage_switch": float(trainer.epoch)})

    def before_step(self, trainer: Any, batch: dict[str, Any]) -> None:
        self.finetuner.before_step(batch)

    def export_model(self, trainer: Any, model: Any) -> Any:
        return self.finetuner.export(model)

    def state_dict(self) -> dict[str, Any]:
        return self.finetuner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.finetuner.load_state_dict(state)


def _finetune_hooks(recipe: Any) -> list[Hook]:
    section = {"strategy": recipe.finetune.strategy, **(recipe.finetune.model_extra or {})}
    if section == {"strategy": "full"}:
        return []  # plain full fine-tuning needs no hook
    return [FinetuneHook(section)]


STRATEGIES: dict[str, StrategyFactory] = {
    name: _finetune_hooks for name in ("full", "head_only", "freeze_blocks", "layer_decay", "head_then_full", "lora")
}


def strategy_hooks(recipe: Any) -> list[Hook]:
    """The hooks of the recipe's fine-tuning strategy; an unknown name is a one-line recipe error."""
    name = recipe.finetune.strategy
    if name not in STRATEGIES:
        raise PoseAdaptError(
            f"recipe key 'finetune.strategy': unknown strategy '{name}' (known: {', '.join(STRATEGIES)})"
        )
    return list(STRATEGIES[name](recipe))  # options are validated by FinetuneConfig (one line naming the key)
