"""UDP Gaussian heatmaps (Huang et al. 2020), the ViTPose / Sapiens target.

Geometry: input pixel centres 0 .. in - 1 map linearly onto heatmap pixel centres 0 .. hm - 1, so a keypoint at
input u sits at heatmap u * (hm - 1) / (in - 1). The Gaussian is centred at that continuous position (no rounding
bias) inside a (6 sigma + 1)^2 window around round(mu). Decoding defaults to DARK-UDP refinement, and the flip test
needs no heatmap shift because mirroring (x -> in - 1 - x) is exact in this geometry.
"""

from __future__ import annotations

from poseadapt.codecs.heatmap_base import HeatmapCodec


class UDPHeatmap(HeatmapCodec):
    """UDP heatmap codec: encode for training targets, decode (argmax + DARK-UDP) for inference.

    Args:
        input_size: (w, h) of the network input crop.
        heatmap_size: (w, h) of the heatmap.
        sigma: target Gaussian sigma in heatmap pixels (2 for 64x48, 6 for Sapiens' 256x192).
        blur_kernel_size: odd OpenCV kernel size of the decode blur (11 matches sigma 2).
        refine: 'dark_udp' (default), 'dark', 'quarter' or 'none' (plain argmax).
        blur_sigma: decode blur sigma; None derives it from the kernel size as OpenCV does (HF VitPose uses 0.8).
    """

    udp = True
    default_refine = "dark_udp"

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        sigma: float = 2.0,
        blur_kernel_size: int = 11,
        refine: str = "dark_udp",
        blur_sigma: float | None = None,
    ) -> None:
        super().__init__(input_size, heatmap_size, sigma, blur_kernel_size, refine, blur_sigma)
