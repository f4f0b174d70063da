"""COCO data layer: annotation loading and validation, top-down samples, augmentation, datasets.

Modules are imported by full path (`poseadapt.data.coco`), so importing one does not pull in the others.
"""
