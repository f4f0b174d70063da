"""`poseadapt demo`: the foundation model adapted to infants four ways, compared on three test sets.

    from poseadapt.demo import run_demo
    summary = run_demo(Path("demo_out"), quick=True)

`settings` (what is rendered and trained), `data` (rendering), `pipeline` (the steps). Training is the shipped
recipe `demo-infant` run by the engine; the report is `poseadapt compare`'s.
"""

from poseadapt.demo.pipeline import run_demo

__all__ = ["run_demo"]
