"""Turning stored uint8 images into model inputs and back (docs/conventions.md#preprocessing).

bamkit's models take RGB resized bilinearly (128 -> 224 for the paper's ResNet-50), scaled to [0, 1] and
normalised with the ImageNet mean/std. Everything here is torch and follows the input's device, so the same
code serves the DataModule, the δ optimiser and the attribution/metric stages on CPU or GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """uint8 NHWC images -> normalised float NCHW model inputs at ``input_size``.

    Args:
        input_size: side of the square model input (224 for the paper's ResNet-50).
        mean, std: per-channel normalisation of [0, 1] pixels.
    """

    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def _stats(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kw = {"device": ref.device, "dtype": ref.dtype}
        return (
            torch.tensor(self.mean, **kw).view(1, -1, 1, 1),
            torch.tensor(self.std, **kw).view(1, -1, 1, 1),
        )

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,H,W,3) -> float (N,3,S,S) in [0, 1], bilinear resize (half-pixel centres, as PIL/cv2)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 images of shape (N,H,W,3), got {images.dtype} {tuple(images.shape)}"
            )
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
            x = x.clamp_(0.0, 1.0)
        return x

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels (N,3,H,W) -> model space."""
        m, s = self._stats(pixels)
        return (pixels - m) / s

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> [0, 1] pixels (not clipped)."""
        m, s = self._stats(x)
        return x * s + m

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,H,W,3) -> normalised float (N,3,S,S)."""
        return self.normalize(self.pixels(images))

    def masks(self, masks: torch.Tensor) -> torch.Tensor:
        """bool (N,H,W) -> bool (N,S,S), nearest-neighbour (docs/conventions.md#region-attribution-and-the-correctness-filter: one full-image mask per image)."""
        if masks.ndim != 3:
            raise ValueError(f"expected masks of shape (N,H,W), got {tuple(masks.shape)}")
        if masks.shape[-2:] == (self.input_size, self.input_size):
            return masks.bool()
        m = F.interpolate(masks[:, None].float(), size=(self.input_size, self.input_size), mode="nearest")
        return m[:, 0] > 0.5

    def black(self, like: torch.Tensor) -> torch.Tensor:
        """The model-space value of a black image (pixel 0), BAM's IG baseline (docs/conventions.md#preprocessing)."""
        return self.normalize(torch.zeros_like(like))

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(int(d["input_size"]), tuple(d["mean"]), tuple(d["std"]))
