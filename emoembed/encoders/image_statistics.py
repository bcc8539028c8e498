"""Classic hand-made affective image features (colour, brightness, saturation, hue, colourfulness, contrast,
edges and simplicity), computed from the pixels the backbone sees.

They follow the low-level feature groups of Machajdik & Hanbury (2010), "Affective image classification using
features inspired by psychology and art theory" (ACM MM), which were shown to carry valence/arousal signal on
IAPS-like photos, in a small differentiable-free torch form that runs on a batch:

* **emotion from colour** (Valdez & Mehrabian 1994): pleasure = .69 Y + .22 S, arousal = −.31 Y + .60 S,
  dominance = −.76 Y + .32 S from the mean brightness Y (HSV value) and saturation S;
* **HSV statistics**: mean and standard deviation of saturation and brightness; the saturation-weighted circular
  mean of hue (cos, sin) and its spread (1 − resultant length); a 12-bin hue histogram weighted by saturation;
  5-bin saturation and brightness histograms;
* **colourfulness** (Hasler & Süsstrunk 2003): √(σ²_rg + σ²_yb) + .3 √(μ²_rg + μ²_yb), with rg = R − G,
  yb = (R + G)/2 − B on the 0–1 scale;
* **contrast**: RMS contrast of luminance (its standard deviation) and the 5–95 % luminance range;
* **edges, texture and simplicity**: mean Sobel gradient magnitude, the share of edge pixels (magnitude > .25),
  the 8-bin magnitude-weighted histogram of gradient orientations (horizontal, vertical and oblique lines:
  M&H's "dynamics"), the variance of the Laplacian (sharpness) and the share of gradient energy in the centre
  third (M&H's low depth of field);
* **composition**: mean saturation and brightness of the centre third against the whole image (rule of thirds).

:func:`image_statistics` maps a (B, 3, H, W) batch in 0–1 RGB to (B, :data:`N_STATISTICS`) float features,
each roughly on a 0–1 scale (no dataset statistics are used, so the block is the same at training and predict
time; a linear model on it standardises in its own weights).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

HUE_BINS = 12
LEVEL_BINS = 5
ORIENTATION_BINS = 8
EDGE_THRESHOLD = 0.25
NAMES: list[str] = (
    ["pleasure", "arousal", "dominance", "saturation_mean", "saturation_std", "brightness_mean", "brightness_std",
     "hue_cos", "hue_sin", "hue_spread"]
    + [f"hue_hist_{i}" for i in range(HUE_BINS)]
    + [f"saturation_hist_{i}" for i in range(LEVEL_BINS)]
    + [f"brightness_hist_{i}" for i in range(LEVEL_BINS)]
    + ["colourfulness", "contrast_rms", "contrast_range", "gradient_mean", "edge_share"]
    + [f"orientation_hist_{i}" for i in range(ORIENTATION_BINS)]
    + ["laplacian_var", "centre_gradient_share", "centre_saturation_diff", "centre_brightness_diff"]
)
N_STATISTICS = len(NAMES)


def rgb_to_hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue (0–1, a turn), saturation and value (0–1) of a (B, 3, H, W) 0–1 RGB batch; each (B, H, W)."""
    r, g, b = rgb.unbind(1)
    cmax, _ = rgb.max(1)
    cmin, _ = rgb.min(1)
    delta = cmax - cmin
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(cmax == r, ((g - b) / safe) % 6, torch.where(cmax == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    sat = torch.where(cmax > 0, delta / torch.where(cmax > 0, cmax, torch.ones_like(cmax)), torch.zeros_like(cmax))
    return hue, sat, cmax


def _histogram(x: torch.Tensor, bins: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image histogram of values in [0, 1] (B, H, W) → (B, bins), normalised by the pixel count."""
    idx = (x.clamp(0, 1) * bins).long().clamp(max=bins - 1).flatten(1)
    w = torch.ones_like(x).flatten(1) if weights is None else weights.flatten(1)
    out = torch.zeros(x.shape[0], bins, dtype=x.dtype, device=x.device)
    return out.scatter_add_(1, idx, w) / idx.shape[1]


def _centre(x: torch.Tensor) -> torch.Tensor:
    """The centre third (rule-of-thirds inner rectangle) of a (B, H, W) map."""
    h, w = x.shape[-2:]
    return x[..., h // 3: h - h // 3, w // 3: w - w // 3]


def image_statistics(rgb: torch.Tensor) -> torch.Tensor:
    """Hand-made affective features (see the module docstring) of a (B, 3, H, W) batch of RGB pixels on the 0–1
    scale: (B, N_STATISTICS) float32, in the order of :data:`NAMES`. Raises ValueError for another shape."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"image_statistics: expected a (B, 3, H, W) RGB batch, got shape {tuple(rgb.shape)}")
    rgb = rgb.float().clamp(0, 1)
    hue, sat, val = rgb_to_hsv(rgb)
    s_mean, v_mean = sat.mean((1, 2)), val.mean((1, 2))
    feats = [0.69 * v_mean + 0.22 * s_mean, -0.31 * v_mean + 0.60 * s_mean, -0.76 * v_mean + 0.32 * s_mean,
             s_mean, sat.std((1, 2)), v_mean, val.std((1, 2))]
    angle = 2 * math.pi * hue
    weight = sat.sum((1, 2)).clamp(min=1e-6)
    c, s = (sat * torch.cos(angle)).sum((1, 2)) / weight, (sat * torch.sin(angle)).sum((1, 2)) / weight
    feats += [c, s, 1 - torch.sqrt(c ** 2 + s ** 2)]
    cols = [torch.stack(feats, 1), _histogram(hue, HUE_BINS, sat), _histogram(sat, LEVEL_BINS),
            _histogram(val, LEVEL_BINS)]
    r, g, b = rgb.unbind(1)
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = torch.sqrt(rg.var((1, 2)) + yb.var((1, 2))) + 0.3 * torch.sqrt(rg.mean((1, 2)) ** 2 + yb.mean((1, 2)) ** 2)
    lum = (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)
    q = torch.quantile(lum.flatten(1), torch.tensor([0.05, 0.95], dtype=lum.dtype, device=lum.device), dim=1)
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=rgb.device) / 4
    gx = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), sobel_x.view(1, 1, 3, 3)).squeeze(1)
    gy = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), sobel_x.t().reshape(1, 1, 3, 3)).squeeze(1)
    mag = torch.sqrt(gx ** 2 + gy ** 2)
    orient = (torch.atan2(gy, gx) % math.pi) / math.pi  # line orientation, 0–1 of a half turn
    lap_k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=rgb.device)
    lap = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), lap_k.view(1, 1, 3, 3)).squeeze(1)
    energy = (mag ** 2).sum((1, 2)).clamp(min=1e-12)
    mag_sum = mag.sum((1, 2)).clamp(min=1e-12)
    cols += [torch.stack([colourful, lum.flatten(1).std(1), q[1] - q[0], mag.mean((1, 2)),
                          (mag > EDGE_THRESHOLD).float().mean((1, 2))], 1),
             _histogram(orient, ORIENTATION_BINS, mag) * mag[0].numel() / mag_sum[:, None],
             torch.stack([lap.var((1, 2)), (_centre(mag) ** 2).sum((1, 2)) / energy,
                          _centre(sat).mean((1, 2)) - s_mean, _centre(val).mean((1, 2)) - v_mean], 1)]
    return torch.cat(cols, 1).float()
