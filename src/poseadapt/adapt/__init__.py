"""Adapting a pre-trained pose model: fine-tuning strategies (`poseadapt.adapt.finetune`) and, later, domain
adaptation, priors and distillation. The training engine (`poseadapt.train`) calls into this package; nothing here
imports the engine, so the dependency direction stays models <- adapt <- train.
"""
