"""SimCC codec: keypoints <-> per-axis classification targets, apart from the model.

SimCC (Li et al. 2022, used by RTMPose) predicts for every keypoint one distribution over
``split_ratio * W`` x-bins and one over ``split_ratio * H`` y-bins of the model input. Bin
``k`` stands for the input coordinate ``k / split_ratio`` (pixel centres at integers, as
``cv2.warpAffine`` places them; the box centre at input pixel (W / 2, H / 2)), all as mmpose's
``SimCCLabel`` and rtmlib. Targets are Gaussians centred on the point's nearest bin, as mmpose
rounds it (RTMPose's label smoothing, max 1, not normalised); the loss compares ``softmax(beta * target)`` with ``softmax(beta * logits)``
(KL divergence, RTMPose's ``KLDiscretLoss``). Decoding takes the arg-max and refines it to
sub-bin precision with the vertex of the parabola through the peak and its two neighbours
(shift- and scale-invariant, so it works on raw logits as well as on targets).

Everything is torch and batched, so targets are built on whatever device the batch is on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# RTMPose's label sigmas (in bins, x then y) for its two input sizes; other sizes scale linearly.
_RTMPOSE_SIGMAS = {(192, 256): (4.9, 5.66), (288, 384): (6.93, 7.99)}


def default_sigma(input_size: tuple[int, int]) -> tuple[float, float]:
    """RTMPose's SimCC label sigma (x, y) in bins for an input (width, height)."""
    if tuple(input_size) in _RTMPOSE_SIGMAS:
        return _RTMPOSE_SIGMAS[tuple(input_size)]
    w, h = input_size
    return (4.9 * w / 192, 5.66 * h / 256)


@dataclass(frozen=True)
class SimCCCodec:
    """Encode / decode SimCC targets for a model input of ``input_size`` = (width, height)."""

    input_size: tuple[int, int] = (192, 256)
    split_ratio: float = 2.0
    sigma: tuple[float, float] | None = None  # bins; None: RTMPose's value for the size
    beta: float = 10.0  # softmax temperature of the loss (RTMPose: 10)

    @property
    def bins(self) -> tuple[int, int]:
        """Number of x bins and y bins."""
        return int(round(self.input_size[0] * self.split_ratio)), int(round(self.input_size[1] * self.split_ratio))

    @property
    def sigmas(self) -> tuple[float, float]:
        return self.sigma if self.sigma is not None else default_sigma(self.input_size)

    def encode(self, keypoints: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Targets of keypoints (B, K, 2) in input pixels with weights (B, K).

        Returns (target_x (B, K, Wx), target_y (B, K, Wy), weights (B, K)). As mmpose's
        ``SimCCLabel._generate_gaussian``, a point keeps its weight while any of its +-3 sigma Gaussian
        lies on the bins (``left, top = mu - radius; right, bottom = mu + radius + 1``; weight 0 when
        ``left >= W or top >= H or right < 0 or bottom < 0``), so a point just outside the crop is
        still supervised. The centre is rounded to the nearest bin (half to even), as mmpose's
        ``_map_coordinates`` does (``np.around(keypoints * simcc_split_ratio)``).
        """
        bx, by = self.bins
        sx, sy = self.sigmas
        mu = torch.round(keypoints.float() * self.split_ratio)
        rx, ry = 3 * sx, 3 * sy
        inside = ((mu[..., 0] - rx < bx) & (mu[..., 1] - ry < by) & (mu[..., 0] + rx + 1 >= 0)
                  & (mu[..., 1] + ry + 1 >= 0))
        weights = torch.where(inside, weights.float(), torch.zeros_like(weights, dtype=torch.float32))
        grid_x = torch.arange(bx, device=keypoints.device, dtype=torch.float32)
        grid_y = torch.arange(by, device=keypoints.device, dtype=torch.float32)
        target_x = torch.exp(-((grid_x - mu[..., 0:1]) ** 2) / (2 * sx * sx))
        target_y = torch.exp(-((grid_y - mu[..., 1:2]) ** 2) / (2 * sy * sy))
        return target_x, target_y, weights

    def decode(self, simcc_x: torch.Tensor, simcc_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints (B, K, 2) in input pixels and scores (B, K) from logits or targets.

        The score is mmpose's (``get_simcc_maximum``): the smaller of the x and y maxima of the raw
        outputs, so score thresholds mean what they mean for mmpose / rtmlib models (a training
        label scores its peak value, ~1).
        """
        x = _refined_argmax(simcc_x.float())
        y = _refined_argmax(simcc_y.float())
        scores = torch.minimum(simcc_x.float().amax(dim=-1), simcc_y.float().amax(dim=-1))
        keypoints = torch.stack([x, y], dim=-1) / self.split_ratio
        return keypoints, scores

    def loss(
        self,
        simcc_x: torch.Tensor,
        simcc_y: torch.Tensor,
        target_x: torch.Tensor,
        target_y: torch.Tensor,
        weights: torch.Tensor,
    ) -> torch.Tensor:
        """RTMPose's KLDiscretLoss: KL(softmax(beta*t) || softmax(beta*logits)) per axis, mean over bins,
        weighted per keypoint, summed over the batch and divided by the number of keypoints, as mmpose
        reduces it (``loss / K``), so ``--clip-grad`` acts on the same gradient scale as there."""
        loss = _kl(simcc_x.float(), target_x, self.beta) + _kl(simcc_y.float(), target_y, self.beta)
        return (loss * weights).sum() / weights.shape[1]


def _kl(logits: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    log_p = F.log_softmax(logits * beta, dim=-1)
    t = F.softmax(target * beta, dim=-1)
    return (t * (torch.log(t.clamp_min(1e-30)) - log_p)).mean(dim=-1)


def _refined_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Sub-bin peak position: the vertex of the parabola through the arg-max and its neighbours (at the
    first / last bin: through the three outermost bins), kept within half a bin of the arg-max."""
    n = logits.shape[-1]
    idx = logits.argmax(dim=-1, keepdim=True)
    centre = idx.clamp(1, n - 2)
    left = logits.gather(-1, centre - 1)
    mid = logits.gather(-1, centre)
    right = logits.gather(-1, centre + 1)
    curvature = left - 2 * mid + right
    ok = curvature < 0
    offset = torch.where(ok, 0.5 * (left - right) / torch.where(ok, curvature, -torch.ones_like(curvature)), 0.0)
    vertex = torch.where(ok, centre.float() + offset, idx.float())
    return torch.minimum(torch.maximum(vertex, idx - 0.5), idx + 0.5).squeeze(-1)


def flip_simcc(simcc_x: torch.Tensor, simcc_y: torch.Tensor, flip_index: np.ndarray,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of a horizontally flipped input turned back into the unflipped frame, as mmpose's
    ``flip_vectors`` (``RTMCCHead.predict`` with ``flip_test``): keypoints swap sides through the
    layout's ``flip_index`` and the x bins are reversed (bin ``k`` -> ``bins - 1 - k``).

    Flipping the input tensor maps input x to ``W - 1 - x``, i.e. bin ``k`` to
    ``split_ratio * (W - 1) - k``; the plain reversal is ``split_ratio - 1`` bins (half a pixel at
    ratio 2) off that. mmpose accepts this, and so does wbt, so flip-test outputs equal mmpose's.
    """
    index = torch.as_tensor(np.asarray(flip_index), device=simcc_x.device, dtype=torch.long)
    return simcc_x[:, index].flip(-1), simcc_y[:, index]
