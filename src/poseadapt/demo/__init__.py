"""`poseadapt demo`: synthetic adults -> infants, end to end (render, pre-train, fine-tune four ways, report).

    from poseadapt.demo import run_demo
    summary = run_demo(Path("demo_out"), quick=True)

`settings` (what is rendered and trained), `data` (rendering), `training` (recipes for the engine),
`evaluation` (scoring across schemas), `pipeline` (the steps), `report` / `outputs` (plots, report.md, JSON).
"""

from poseadapt.demo.pipeline import default_cache_dir, run_demo

__all__ = ["default_cache_dir", "run_demo"]
