"""The `poseadapt` console script: `score` with plain options runs without importing typer.

`poseadapt score` is timed as a whole process against pycocotools and bare hotcoco (benchmarks/bench_score.py),
and importing typer and building the CLI costs ~30-40 ms of a ~0.25 s run. So a command line made only of
`score`'s own options, each spelled `--name value` or `--name=value` (flags bare), given once, with `--gt` and
`--pred`, goes straight to `score_cmd.run`; anything else (help, an unknown or repeated option, a value typer
would refuse, another command) goes to the full typer CLI in `cli/main.py`, which words every error. The option
table below is checked against the typer command's own parameters by tests/test_score_gate.py, and errors from
the run itself are reported as `cli.main.main` reports them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# option -> (parameter of score_cmd.run, type); defaults are those of `poseadapt score` in cli/main.py
SCORE_OPTIONS: dict[str, tuple[str, type]] = {
    "--gt": ("gt", Path),
    "--pred": ("pred", Path),
    "--schema": ("schema", str),
    "--metric": ("metric", str),
    "--alpha": ("alpha", float),
    "--normalize": ("normalize", str),
    "--engine": ("engine", str),
    "--average": ("average", str),
    "--auc-rule": ("auc_rule", str),
    "--prior": ("prior", Path),
}
SCORE_FLAGS: dict[str, str] = {"--per-keypoint": "per_keypoint", "--json": "json_out"}
SCORE_DEFAULTS: dict[str, object] = {
    "schema": None,
    "metric": "ap",
    "alpha": None,
    "normalize": "bbox",
    "per_keypoint": False,
    "json_out": False,
    "engine": "hotcoco",
    "average": None,
    "auc_rule": "mmpose",
    "prior": None,
}


def plain_score_options(args: list[str]) -> dict[str, object] | None:
    """`score`'s keyword arguments from its options, or None when the full CLI should read them."""
    values: dict[str, object] = {}
    i = 0
    while i < len(args):
        name, has_value, value = args[i].partition("=")
        if name in SCORE_FLAGS and not has_value:
            key, converted = SCORE_FLAGS[name], True
            i += 1
        elif name in SCORE_OPTIONS:
            if not has_value:
                if i + 1 >= len(args):
                    return None
                value = args[i + 1]
            if value.startswith("-"):
                return None
            key, kind = SCORE_OPTIONS[name]
            try:
                converted = kind(value)
            except ValueError:
                return None
            i += 1 if has_value else 2
        else:
            return None
        if key in values:
            return None
        values[key] = converted
    if "gt" not in values or "pred" not in values:
        return None
    return {**SCORE_DEFAULTS, **values}


@contextmanager
def reported_errors() -> Iterator[None]:
    """Both entry points' last word: a PoseAdaptError is one `error:` line (exit 2), Ctrl-C exits 130, a closed
    pipe exits quietly."""
    from poseadapt.errors import PoseAdaptError

    try:
        yield
    except PoseAdaptError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    options = plain_score_options(args[1:]) if args[:1] == ["score"] else None
    if options is None:
        from poseadapt.cli.main import main as full_cli

        full_cli(argv)
        return
    from poseadapt.cli import score_cmd

    with reported_errors():
        score_cmd.run(**options)  # type: ignore[arg-type]
    sys.exit(0)


if __name__ == "__main__":
    main()
