"""Expert merge is exact; head surgery keeps the shared keypoints' outputs identical."""

from __future__ import annotations

import pytest
import torch

from poseadapt.errors import PoseAdaptError
from poseadapt.interop.checkpoint import load_model, save_checkpoint
from poseadapt.models import create_model
from poseadapt.models.surgery import keep_head, merge_experts, swap_head
from poseadapt.schemas import get_schema


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if "norm" in name and "weight" in name else 0.0))
    return model


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_merge_experts_is_exact_for_every_dataset():
    schemas = ["coco17", "aic14", "mpii16"]
    model = randomize(create_model("vit_tiny", schemas, head_names=["coco", "aic", "mpii"], num_experts=3)).eval()
    x = torch.randn(2, 3, 256, 192)
    for index, name in enumerate(["coco", "aic", "mpii"]):
        dense = merge_experts(model, name).eval()
        assert dense.config.backbone.num_experts == 0 and dense.head_names == [name]
        assert dense.backbone.blocks[0].mlp.fc2.weight.shape == (64, 256)
        with torch.no_grad():
            expected = model(x, dataset_index=torch.full((2,), index))
            got = dense(x)
        assert got.shape[1] == len(get_schema(schemas[index]))
        assert rel_err(got, expected) < 1e-6
    with pytest.raises(PoseAdaptError, match="no task experts"):
        merge_experts(dense)


def test_keep_head_gives_a_plain_single_head_model(tmp_path):
    """A dense multi-head model (a multi-dataset run from a dense checkpoint: no experts to merge) -> one head on the
    shared backbone, its outputs unchanged, saved and loaded as a plain single-head checkpoint; with experts, the
    same call merges that head's expert."""
    schemas = ["coco17", "mpii16", "aic14"]
    model = randomize(create_model("vit_tiny", schemas, head="simple", img_size=(64, 48))).eval()
    x = torch.randn(2, 3, 64, 48)
    for index, name in enumerate(schemas):
        one = keep_head(model, name).eval()
        assert one.head_names == [name] and one.schema.name == name and one.config.backbone.num_experts == 0
        with torch.no_grad():
            assert torch.equal(one(x), model(x, dataset_index=torch.full((2,), index)))
        assert one.provenance["kept_head"] == {"dataset_index": index, "head": name}
    path = save_checkpoint(keep_head(model, 1), tmp_path / "mpii.safetensors")
    loaded = load_model(path).eval()
    assert loaded.head_names == ["mpii16"] and len(loaded.heads) == 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x, dataset_index=torch.full((2,), 1)))
    one.backbone.blocks[0].attn.qkv.weight.data.add_(1.0)  # a copy: the source model is untouched
    assert not torch.equal(one.backbone.blocks[0].attn.qkv.weight, model.backbone.blocks[0].attn.qkv.weight)
    with pytest.raises(PoseAdaptError, match="no head 'infant21'"):
        keep_head(model, "infant21")
    with pytest.raises(PoseAdaptError, match="out of range"):
        keep_head(model, 3)
    experts = randomize(create_model("vit_tiny", schemas, img_size=(64, 48), num_experts=3)).eval()
    merged = keep_head(experts, "aic14").eval()
    assert merged.config.backbone.num_experts == 0 and "merged_experts" in merged.provenance
    with torch.no_grad():
        assert rel_err(merged(x), experts(x, dataset_index=torch.full((2,), 2))) < 1e-6


def test_head_surgery_keeps_shared_keypoints_identical():
    model = randomize(create_model("vit_tiny", "coco17")).eval()
    new, report = swap_head(model, "mpii16")
    new.eval()
    coco, mpii = get_schema("coco17"), get_schema("mpii16")
    assert new.schema == mpii and new.head_names == ["mpii16"]
    assert len(report.carried) == 12 and set(report.fresh) == {"pelvis", "thorax", "upper_neck", "head_top"}
    assert set(report.approximate) == {"pelvis", "thorax"}
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        before, after = model(x), new(x)
    assert after.shape == (2, 16, 64, 48)
    for old_name, new_name in report.carried:
        assert torch.equal(before[:, coco.index(old_name)], after[:, mpii.index(new_name)])
    fresh = after[:, mpii.index("head_top")]
    assert not any(torch.allclose(fresh, before[:, k]) for k in range(17))
    assert new.provenance["head_surgery"]["new_head"] == "mpii16"


def test_head_surgery_can_keep_the_old_head(tmp_path):
    model = randomize(create_model("vit_tiny", "coco17", head="simple")).eval()
    both, report = swap_head(model, "halpe26", keep_old=True)
    both.eval()
    assert both.head_names == ["coco17", "halpe26"] and len(report.carried) == 17
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        before, old, new = model(x), both(x, 0), both(x, 1)
    assert torch.equal(before, old)
    halpe = get_schema("halpe26")
    for old_name, new_name in report.carried:
        assert torch.equal(before[:, model.schema.index(old_name)], new[:, halpe.index(new_name)])
    again = load_model(save_checkpoint(both, tmp_path / "both.safetensors"))
    with torch.no_grad():
        assert torch.equal(again(x, 1), new)


def test_input_downsample_runs_the_same_weights_on_shrunk_crops_at_the_same_cost(tmp_path):
    import torch.nn.functional as F

    from poseadapt.adapt.flops import count_flops
    from poseadapt.interop.checkpoint import load_checkpoint
    from poseadapt.models.surgery import with_input_downsample

    small = randomize(create_model("vit_tiny", "coco17", "classic", img_size=(128, 96))).eval()
    big = with_input_downsample(small, 2).eval()
    assert big.input_size == (192, 256) and big.heatmap_size == (48, 64)
    assert big.config.codec["input_size"] == [192, 256] and big.config.codec["heatmap_size"] == [48, 64]
    assert big.config.codec["sigma"] == 2 * small.config.codec["sigma"]
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        shrunk = F.avg_pool2d(x, 2)
        expected = F.interpolate(small(shrunk), size=(64, 48), mode="bilinear", align_corners=True)
        got = big(x)
    torch.testing.assert_close(got, expected)
    assert count_flops(big) == count_flops(small)  # the crop is 4x larger, the work is not
    again = load_checkpoint(save_checkpoint(big, tmp_path / "big.safetensors")).eval()
    assert again.config.input_downsample == 2 and again.input_size == (192, 256)
    with torch.no_grad():
        torch.testing.assert_close(again(x), got)
    with pytest.raises(PoseAdaptError, match="input_downsample needs heatmap heads"):
        with_input_downsample(create_model("vit_tiny", "coco17", "simcc"), 2)


def test_resize_input_resizes_the_position_embedding_and_scales_the_codec():
    from poseadapt.models.surgery import resize_input
    from poseadapt.models.vit import resize_pos_embed

    small = randomize(create_model("vit_tiny", "coco17", "classic", img_size=(128, 96))).eval()
    big = resize_input(small, (192, 256)).eval()
    assert big.input_size == (192, 256) and big.heatmap_size == (48, 64) and big.config.codec["sigma"] == 2.0
    assert big.backbone.pos_embed.shape[1] == 16 * 12
    torch.testing.assert_close(big.backbone.pos_embed, resize_pos_embed(small.backbone.pos_embed, (8, 6), (16, 12)))
    same = {k for k in small.state_dict() if k != "backbone.pos_embed"}
    assert all(torch.equal(small.state_dict()[k], big.state_dict()[k]) for k in same)
    with torch.no_grad():
        assert big(torch.randn(1, 3, 256, 192)).shape == (1, 17, 64, 48)
    with pytest.raises(PoseAdaptError, match="multiple of the patch size"):
        resize_input(small, (100, 128))
    with pytest.raises(PoseAdaptError, match="SimCC"):
        resize_input(create_model("vit_tiny", "coco17", "simcc"), (96, 128))


def test_a_downsampled_model_resized_keeps_its_downsampling():
    """A 256x192 teacher turned into a student fed 2x-shrunk 256x192 crops: the backbone must end at 128x96."""
    from poseadapt.models.surgery import resize_input, with_input_downsample

    teacher = randomize(create_model("vit_tiny", "coco17", "classic", img_size=(256, 192))).eval()
    student = resize_input(with_input_downsample(teacher, 2), (192, 256)).eval()
    assert student.input_size == (192, 256) and student.config.backbone.img_size == (128, 96)
    assert student.heatmap_size == teacher.heatmap_size and student.backbone.pos_embed.shape[1] == 8 * 6
    with torch.no_grad():
        assert student(torch.randn(1, 3, 256, 192)).shape == (1, 17, 64, 48)
    with pytest.raises(PoseAdaptError, match="input_downsample 2"):
        resize_input(with_input_downsample(teacher, 2), (176, 240))  # patch multiples, odd halves


def test_recipes_fine_tune_a_checkpoint_at_another_input_size(tmp_path, tiny_recipe, cli_train):
    from poseadapt.interop.checkpoint import load_checkpoint

    start = save_checkpoint(create_model("vit_tiny", "coco17", "simple", img_size=(64, 48)), tmp_path / "s.safetensors")
    tiny_recipe["model"]["checkpoint"] = str(start)
    tiny_recipe["model"]["input_size"] = [96, 128]  # twice the checkpoint's
    cli_train(tiny_recipe, tmp_path / "up")
    assert load_checkpoint(tmp_path / "up" / "final.safetensors").input_size == (96, 128)
    tiny_recipe["model"]["input_downsample"] = 2  # the checkpoint's own resolution inside, 2x crops outside
    cli_train(tiny_recipe, tmp_path / "down")
    model = load_checkpoint(tmp_path / "down" / "final.safetensors")
    assert model.input_size == (96, 128) and model.config.input_downsample == 2
    assert model.config.backbone.img_size == (64, 48)


def test_an_inverted_input_model_reads_x_as_the_original_reads_255_minus_x(tmp_path):
    """The inversion lives in mean / std, so it is exact, survives a checkpoint, and is undone by asking again."""
    from poseadapt.interop.checkpoint import load_checkpoint
    from poseadapt.models.surgery import with_input_inverted

    model = randomize(create_model("vit_tiny", "coco17", "simple", img_size=(64, 48))).eval()
    assert not model.config.input_inverted
    inverted = with_input_inverted(model).eval()
    assert inverted.config.input_inverted and with_input_inverted(inverted) is inverted
    pixels = torch.randint(0, 256, (2, 3, 64, 48)).float()
    with torch.no_grad():
        expected = model(model.normalize(255.0 - pixels))
        torch.testing.assert_close(inverted(inverted.normalize(pixels)), expected)
        assert not torch.allclose(model(model.normalize(pixels)), expected)
    again = load_checkpoint(save_checkpoint(inverted, tmp_path / "inv.safetensors"))
    assert again.config.input_inverted
    with torch.no_grad():
        torch.testing.assert_close(again(again.normalize(pixels)), expected)
    back = with_input_inverted(again, False)
    torch.testing.assert_close(torch.tensor(back.config.std), torch.tensor(model.config.std))
    torch.testing.assert_close(torch.tensor(back.config.mean), torch.tensor(model.config.mean))
    with pytest.raises(PoseAdaptError, match="one sign"):
        from dataclasses import replace

        replace(model.config, std=(58.0, -57.0, 57.0))


def test_recipe_key_invert_input_trains_and_records_an_inverting_model(tmp_path, tiny_recipe, cli_train):
    from poseadapt.interop.checkpoint import load_checkpoint

    cli_train(tiny_recipe, tmp_path / "plain")
    plain = tmp_path / "plain/final.safetensors"
    cli_train(tiny_recipe, tmp_path / "inv", "model.invert_input=true", f"model.checkpoint={plain}")
    inverted = load_checkpoint(tmp_path / "inv/final.safetensors")
    assert inverted.config.input_inverted and not load_checkpoint(plain).config.input_inverted
    # null keeps what the checkpoint does; false turns it back
    cli_train(tiny_recipe, tmp_path / "keep", f"model.checkpoint={tmp_path / 'inv/final.safetensors'}")
    assert load_checkpoint(tmp_path / "keep/final.safetensors").config.input_inverted
    cli_train(tiny_recipe, tmp_path / "back", "model.invert_input=false",
              f"model.checkpoint={tmp_path / 'inv/final.safetensors'}")  # fmt: skip
    assert not load_checkpoint(tmp_path / "back/final.safetensors").config.input_inverted
