"""Target codecs: keypoints <-> training targets, one object per representation shared by training and inference.

- `UDPHeatmap`: UDP Gaussian heatmaps, DARK-UDP decoding (ViTPose, Sapiens).
- `MSRAHeatmap`: classic stride-based heatmaps, DARK or quarter-offset decoding (SimpleBaseline, HRNet).
- `SimCC`: per-axis classification labels (RTMPose, DWPose).

Each has ``encode(keypoints, visible)`` (input-crop pixels -> targets + per-keypoint weights), ``decode(...)``
(network output -> input-crop pixels + scores) and ``to_image`` (input-crop pixels -> image pixels).
The flip helpers undo a flip test with a schema's ``flip_index``.
"""

from poseadapt.codecs.flip import flip_heatmaps_back, flip_keypoints, flip_simcc_back
from poseadapt.codecs.geometry import image_to_input, input_to_image
from poseadapt.codecs.msra_heatmap import MSRAHeatmap
from poseadapt.codecs.simcc import SimCC
from poseadapt.codecs.udp_heatmap import UDPHeatmap

__all__ = [
    "MSRAHeatmap",
    "SimCC",
    "UDPHeatmap",
    "flip_heatmaps_back",
    "flip_keypoints",
    "flip_simcc_back",
    "image_to_input",
    "input_to_image",
]
