"""2D networks of BCP and the LMT-style baseline: the feature backbone and the visibility module.

* :class:`ResNetBackbone`: a compact ResNet-style CNN (the kit's stand-in for LMT's
  PoseResNet-152, method notes 1.2). Images ``(B, 3, H, W)`` in [0, 1] -> features
  ``(B, C, H/4, W/4)``. Structure: a 3x3 stride-2 stem; residual stages at ``H/4`` and ``H/8``
  (two :class:`BasicBlock` each, the first strided); the ``H/8`` stage is upsampled (bilinear,
  :func:`upsample2_aligned`) and added to the ``H/4`` stage (a one-level feature pyramid, like
  the "simple baselines" deconvolutions but cheaper); a 3x3 block and a 1x1 projection to ``C``
  feature channels (learnable-triangulation's ``process_features``).
  With ``kind="torchvision-resnet18"`` the four ResNet-18 stages from torchvision (only when
  torchvision is installed; never required) replace the kit's stages; the output is the same.
* **Feature-pixel centres.** A convolution (or pooling) with kernel ``k``, stride ``s`` and
  padding ``p`` centres its output pixel ``j`` on input pixel ``s j + (k - 1) / 2 - p``; every
  strided layer here has ``(k - 1) / 2 = p`` (3x3 pad 1, 1x1 pad 0, torchvision's 7x7 pad 3 and
  3x3 max-pool pad 1), so pixel ``j`` of the ``H/2``, ``H/4`` and ``H/8`` maps is centred on
  image pixel ``2j``, ``4j`` and ``8j`` (pixel centres at integers, docs/conventions.md), not
  ``s j + (s - 1) / 2`` as a map that tiles the image. :func:`upsample2_aligned` keeps that
  geometry (``H/4`` pixel ``i`` samples the ``H/8`` map at ``i / 2``), so feature pixel ``k``
  is centred on image pixel ``4k`` (:data:`FEATURE_PIXEL_CENTRE`,
  :meth:`ResNetBackbone.feature_pixel_centre`); unprojection samples the maps with it.
* :class:`VisibilityNet`: the kit's reconstruction of LMT's visibility module (not public, method
  notes 8 row 6): a small strided CNN, global average pooling and a linear layer give one logit
  per subsampled vertex per image; it is supervised with the rendered visibility (BCE).

Normalisation: GroupNorm (``"group"``, per sample; see :mod:`vhakit.models.blocks`) or BatchNorm
(``"batch"``). Images are ImageNet-normalised inside the networks (as learnable-triangulation).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BACKBONES", "OUTPUT_STRIDE", "FEATURE_PIXEL_CENTRE", "make_norm2d", "BasicBlock",
           "ResNetBackbone", "VisibilityNet", "normalize_images", "upsample2_aligned"]

BACKBONES = ("resnet", "torchvision-resnet18")
OUTPUT_STRIDE = 4  # feature maps are H/4 x W/4 (LT: 384 -> 96)
# (stride, offset): feature pixel k is centred on image pixel stride * k + offset (module docstring)
FEATURE_PIXEL_CENTRE = (OUTPUT_STRIDE, 0.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_GROUPS = 8


def make_norm2d(kind: str, channels: int) -> nn.Module:
    """``"group"``: GroupNorm with ``gcd(channels, 8)`` groups; ``"batch"``: BatchNorm2d."""
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, MAX_GROUPS), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be 'group' or 'batch', got {kind!r}")


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> ImageNet-normalised (mean/std per channel)."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (B, 3, H, W) with values in [0, 1], got {shape}")


def upsample2_aligned(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling ``(B, C, h, w) -> (B, C, 2h, 2w)`` in which output pixel ``i``
    samples the input at ``i / 2`` (even pixels copy the input, odd ones average two
    neighbours; the last odd row and column repeat the edge). This is the geometry of strided
    convolutions with ``(k - 1) / 2 = p``: ``F.interpolate(align_corners=False)`` samples at
    ``i / 2 - 1 / 4`` instead, half an output pixel off."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")  # (B, C, h + 1, w + 1)
    up = F.interpolate(padded, size=(2 * h + 1, 2 * w + 1), mode="bilinear", align_corners=True)
    return up[..., :2 * h, :2 * w]


def _conv_norm_relu(cin: int, cout: int, stride: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), make_norm2d(norm, cout),
                         nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet basic block: [conv3x3(stride) -> norm -> ReLU -> conv3x3 -> norm] + skip -> ReLU.
    ``(B, cin, H, W) -> (B, cout, H/stride, W/stride)``; the skip is a strided 1x1 convolution
    when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1, norm: str = "group") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), make_norm2d(norm, cout),
            nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            make_norm2d(norm, cout))
        self.skip = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), make_norm2d(norm, cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNetBackbone(nn.Module):
    """Images ``(B, 3, H, W)`` in [0, 1] (H, W divisible by 8) -> ``(B, out_channels, H/4, W/4)``.

    Args:
        out_channels: feature channels that are unprojected (LT: 32).
        channels: ``(c_stem, c_4, c_8)`` widths at ``H/2``, ``H/4`` and ``H/8``.
        norm: ``"group"`` or ``"batch"``.
        kind: ``"resnet"`` (the kit's) or ``"torchvision-resnet18"`` (needs torchvision; random
            initialisation: the kit ships no weights).
    """

    def __init__(self, out_channels: int = 16, channels: tuple[int, int, int] = (16, 32, 64),
                 norm: str = "group", kind: str = "resnet") -> None:
        super().__init__()
        if kind not in BACKBONES:
            raise ValueError(f"kind must be one of {BACKBONES}, got {kind!r}")
        if len(channels) != 3:
            raise ValueError(f"channels must be (c_stem, c_4, c_8), got {channels}")
        c0, c1, c2 = channels
        self.kind = kind
        if kind == "resnet":
            self.stem = _conv_norm_relu(3, c0, 2, norm)  # H/2
            self.stage4 = nn.Sequential(BasicBlock(c0, c1, 2, norm), BasicBlock(c1, c1, 1, norm))
            self.stage8 = nn.Sequential(BasicBlock(c1, c2, 2, norm), BasicBlock(c2, c2, 1, norm))
        else:
            try:
                from torchvision.models import resnet18
            except ImportError as err:
                raise ValueError("kind='torchvision-resnet18' needs torchvision; install it or use "
                                 "kind='resnet'") from err
            tv = resnet18(weights=None)
            self.stem = nn.Sequential(tv.conv1, tv.bn1, tv.relu)  # H/2, 64 channels
            self.stage4 = nn.Sequential(tv.maxpool, tv.layer1)  # H/4, 64
            self.stage8 = tv.layer2  # H/8, 128
            c1, c2 = 64, 128
        self.lateral = nn.Conv2d(c2, c1, 1, bias=False)
        self.head = nn.Sequential(_conv_norm_relu(c1, c1, 1, norm), nn.Conv2d(c1, out_channels, 1))
        self.out_channels = out_channels
        self.pixel_centre = FEATURE_PIXEL_CENTRE  # (stride, offset): see feature_pixel_centre

    def feature_pixel_centre(self, k):
        """Image pixel (pixel centres at integers) on which feature pixel ``k`` (an index along
        x or y; number or tensor) is centred: ``4 k`` (the module docstring derives it)."""
        stride, offset = self.pixel_centre
        return stride * k + offset

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        B, _, H, W = images.shape  # batch (views folded in), channels, height, width
        if H % 8 or W % 8:
            raise ValueError(f"image height and width must be divisible by 8, got {(H, W)}; "
                             "crop or resize the images")
        x4 = self.stage4(self.stem(normalize_images(images)))  # (B, c1, H/4, W/4)
        x8 = self.stage8(x4)  # (B, c2, H/8, W/8)
        x4 = x4 + upsample2_aligned(self.lateral(x8))
        return self.head(x4)  # (B, out_channels, H/4, W/4)


class VisibilityNet(nn.Module):
    """Per-image, per-vertex visibility logits: ``(B, 3, H, W)`` -> ``(B, n_vertices)``.

    A strided CNN (one 3x3 stride-2 convolution per entry of ``channels``), global average
    pooling, and a linear layer. ``sigmoid(logits)`` is the probability that each subsampled
    vertex is visible in the image (the rendered ``visibility`` is the target).
    """

    def __init__(self, n_vertices: int = 108, channels: tuple[int, ...] = (16, 32, 64, 64),
                 norm: str = "group") -> None:
        super().__init__()
        layers, cin = [], 3
        for c in channels:
            layers.append(_conv_norm_relu(cin, c, 2, norm))
            cin = c
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(cin, n_vertices)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        x = self.body(normalize_images(images))  # (B, c, H / 2^L, W / 2^L)
        return self.out(x.mean(dim=(2, 3)))  # (B, n_vertices)
