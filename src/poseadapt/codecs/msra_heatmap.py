"""MSRA Gaussian heatmaps (SimpleBaseline / HRNet), optionally with the unbiased DARK encoding.

Geometry: the heatmap is the input subsampled by the stride in / hm, so input u sits at heatmap u * hm / in and
decoded heatmap positions are multiplied back by the stride. The classic target is centred at the rounded position
round(u / stride) (a quantisation bias of up to half a heatmap pixel); `unbiased=True` centres it at the
continuous position as DARK does. The flip test of this geometry shifts the flipped heatmap one pixel right.
"""

from __future__ import annotations

from poseadapt.codecs.heatmap_base import HeatmapCodec


class MSRAHeatmap(HeatmapCodec):
    """MSRA heatmap codec with the same interface as `UDPHeatmap`.

    Args:
        input_size: (w, h) of the network input crop.
        heatmap_size: (w, h) of the heatmap.
        sigma: target Gaussian sigma in heatmap pixels.
        blur_kernel_size: odd OpenCV kernel size of the DARK blur (11 matches sigma 2).
        refine: 'dark' (default), 'quarter' (+-0.25 px towards the larger neighbour), 'dark_udp' or 'none'.
        blur_sigma: decode blur sigma; None derives it from the kernel size as OpenCV does.
        unbiased: centre the target Gaussian at the continuous position (DARK encoding) instead of the rounded one.
    """

    udp = False
    default_refine = "dark"

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        sigma: float = 2.0,
        blur_kernel_size: int = 11,
        refine: str = "dark",
        blur_sigma: float | None = None,
        unbiased: bool = False,
    ) -> None:
        super().__init__(input_size, heatmap_size, sigma, blur_kernel_size, refine, blur_sigma)
        self.unbiased = bool(unbiased)

    def _integer_centre(self) -> bool:
        return not self.unbiased
