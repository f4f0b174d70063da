"""A never-repeating stream of rendered people as top-down training samples (no dataset in memory or on disk).

Pre-training on rendered people gains from diversity more than from repeats: sample `i` of epoch `e` renders
image `e * n + i` of the synthetic population (`poseadapt.synth` draws every image from (seed, index) alone), so
every epoch sees new people, poses, views and backgrounds, and an exact resume renders exactly the same images.
A scene with several people contributes one of them (chosen by the sample's own generator); the others stay in
the crop as distractors, as in real multi-person images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from poseadapt.data.augment import Transform
from poseadapt.data.coco import coco_keypoints_from_dict
from poseadapt.data.dataset import KeypointEncoder, TopDownDataset
from poseadapt.schemas import KeypointSchema
from poseadapt.synth.populations import Population


class SynthStreamDataset:
    """`n` samples per epoch, each a freshly rendered image of `population` cut around one labelled person."""

    def __init__(
        self,
        population: str | Population,
        schema: KeypointSchema,
        codec: KeypointEncoder,
        input_size: Sequence[int],
        *,
        n: int,
        view: str = "random",
        size: int = 256,
        seed: int = 0,
        people: int | tuple[int, int] = 1,
        look: str = "visible",
        transforms: Sequence[Transform] | None = None,
        padding: float = 1.25,
    ) -> None:
        from poseadapt.synth import get_population

        self.population = get_population(population)
        self.schema = schema
        self.codec = codec
        self.input_size = tuple(int(v) for v in input_size)
        self.n = int(n)
        self.view = view
        self.size = int(size)
        self.seed = int(seed)
        self.people = people
        self.look = look
        self.transforms = transforms
        self.padding = float(padding)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index, self.epoch)

    def item(self, index: int, epoch: int) -> dict[str, Any]:
        """Sample `index` of `epoch` (what `MixedDataset` calls, since DataLoader workers hold copies)."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} samples")
        from poseadapt.synth import render_sample
        from poseadapt.synth.coco_writer import CocoBuilder

        rng = np.random.default_rng([self.seed, int(epoch), int(index), 7])
        # a scene can frame every person out of view; the next index of the stream then stands in
        for attempt in range(8):
            k = int(epoch) * self.n + int(index) + attempt * 10_000_019
            sample = render_sample(
                k, self.population, view=self.view, size=self.size, seed=self.seed, people=self.people, look=self.look
            )
            builder = CocoBuilder(self.schema, self.population.name, self.view, self.seed)
            builder.add(sample, f"stream_{k}.jpg")
            data = coco_keypoints_from_dict(builder.to_dict(), self.schema, source="synth-stream")
            one = TopDownDataset(
                data,
                None,
                self.codec,
                self.input_size,
                self.transforms,
                True,
                images_in_memory={int(data.image_ids[0]) if len(data.image_ids) else 0: sample.image[..., ::-1].copy()},
                padding=self.padding,
            )
            if len(one):
                return one.get(int(rng.integers(len(one))), rng)
        raise RuntimeError(f"synthetic stream: no labelled person in 8 renders from index {index}")
