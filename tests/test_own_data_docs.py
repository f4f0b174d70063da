"""docs/RECIPES.md's key table is what `poseadapt recipe keys --markdown` prints; `recipe keys --json` lists
every key of the pydantic recipe models."""

from __future__ import annotations

import json
from pathlib import Path

from poseadapt.cli.recipe_cmd import keys_markdown, recipe_keys
from poseadapt.train.recipe import Recipe

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_recipes_doc_table_matches_the_code() -> None:
    text = (DOCS / "RECIPES.md").read_text(encoding="utf-8")
    table = text.partition("<!-- keys:start -->\n")[2].partition("<!-- keys:end -->")[0]
    assert table == keys_markdown(), "docs/RECIPES.md is stale: run write_recipes_doc() (see the doc)"


def test_recipe_keys_cover_every_field_of_every_section() -> None:
    keys = {row["key"] for row in recipe_keys()}
    for section, field in Recipe.model_fields.items():
        assert (field.alias or section) in keys
        model = field.annotation
        if hasattr(model, "model_fields"):
            for name, sub in model.model_fields.items():
                assert f"{section}.{sub.alias or name}" in keys
    assert {"data.train[].ann", "data.train[].synth.population", "schedule.warmup_iters", "adapt"} <= keys


def test_recipe_keys_json_and_recipes_cli(capsys) -> None:
    import pytest

    from poseadapt.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["recipe", "keys", "--json"])
    assert exc.value.code == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == json.loads(json.dumps(recipe_keys()))
    with pytest.raises(SystemExit):
        main(["recipes"])
    assert "synth-adult-tiny" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["recipes", "synth-adult-tiny"])
    assert "model:" in capsys.readouterr().out
