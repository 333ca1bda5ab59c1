"""Exemplar-MT: invariance to augmentation, with a mean-teacher target (ARML appendix B.1).

S4L's Exemplar task (Zhai et al. 2019) trains the network to produce features that do not
change under image transformations. ARML (Shi et al. 2020, appendix B.1) makes two changes,
and this module builds both. First, the features of the original image come from a model with
time-averaged parameters (a mean teacher, Tarvainen and Valpola 2017). Second, the loss acts
only on the cosine similarity between the original and the augmented features, without the
negative samples of S4L's triplet loss.

For a batch x of unlabelled images:
    student = head(backbone(augment(x)))                 # gradients flow here
    teacher = head_ema(backbone_ema(x)), detached        # never trained by gradients
    loss    = mean over the batch of 1 - cos(student, teacher),   a value in [0, 2]
The augmentation applies a horizontal flip with probability ``flip_prob``, adds Gaussian noise
of std ``noise_std`` to every pixel and zeroes one ``cutout_size`` x ``cutout_size`` square
(Cutout, DeVries and Taylor 2017). After each optimiser step, ``after_step`` moves the teacher
toward the student: t <- ema_decay * t + (1 - ema_decay) * s, for parameters and float buffers.

NOTE: the ARML paper does not give the augmentation strengths. The defaults (noise std 0.15 as
in Oliver et al. 2018's CIFAR-10 settings, flip probability 0.5, a 16-pixel Cutout square as
DeVries and Taylor used for CIFAR-10) are sized for 32x32 images with per-channel
normalisation. For 8x8 digits pass a smaller ``cutout_size`` (for example 4).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from arml_core.models.multihead import MultiHead

logger = logging.getLogger(__name__)


def sample_cutout_mask(
    batch_size: int, height: int, width: int, size: int, generator: torch.Generator
) -> torch.Tensor:
    """Sample one Cutout square per image and return a bool mask (B, 1, H, W), True where zeroed.

    Each square's centre is uniform over the pixel grid and the square is clipped at the image
    border, so it covers size x size pixels when it lies inside the image and fewer at the
    edges. For an even ``size`` the centre pixel is the one just after the middle. ``size`` 0
    gives an all-False mask.
    """
    if size < 0:
        raise ValueError(f"cutout size must be >= 0 pixels, got {size}")
    centre_rows = torch.randint(0, height, (batch_size,), generator=generator, device=generator.device)
    centre_cols = torch.randint(0, width, (batch_size,), generator=generator, device=generator.device)
    top = (centre_rows - size // 2).view(-1, 1, 1, 1)
    left = (centre_cols - size // 2).view(-1, 1, 1, 1)

    rows = torch.arange(height, device=generator.device).view(1, 1, -1, 1)
    cols = torch.arange(width, device=generator.device).view(1, 1, 1, -1)
    inside_rows = (rows >= top) & (rows < top + size)
    inside_cols = (cols >= left) & (cols < left + size)
    return inside_rows & inside_cols


def exemplar_augment(
    images: torch.Tensor,
    generator: torch.Generator,
    flip_prob: float = 0.5,
    noise_std: float = 0.15,
    cutout_size: int = 16,
) -> torch.Tensor:
    """Return a randomly augmented copy of ``images`` (B, C, H, W) without mutating the input.

    In order: horizontal flip of each image with probability ``flip_prob``, additive Gaussian
    noise N(0, noise_std^2) on every value, then Cutout (zero one square per image across all
    channels). All random numbers come from ``generator``, drawn on its device and moved to the
    images' device, so a seed reproduces the augmentation on any device.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if not 0.0 <= flip_prob <= 1.0:
        raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob}")
    if noise_std < 0.0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    batch_size, _, height, width = images.shape
    device = generator.device

    flip = torch.rand(batch_size, generator=generator, device=device) < flip_prob
    out = torch.where(flip.to(images.device).view(-1, 1, 1, 1), images.flip(-1), images)

    if noise_std > 0.0:
        noise = torch.randn(images.shape, generator=generator, device=device, dtype=images.dtype)
        out = out + noise_std * noise.to(images.device)

    if cutout_size > 0:
        mask = sample_cutout_mask(batch_size, height, width, cutout_size, generator)
        out = out.masked_fill(mask.to(images.device), 0.0)
    return out


class ExemplarMTTask:
    """Exemplar-MT auxiliary task: cosine agreement with a mean teacher's features.

    The head (``make_head``) is a linear projection from the backbone features to
    ``projection_dim``. The teacher, a deep copy of the model's backbone and this task's head,
    is created on the first call to ``loss`` or ``after_step``. Its parameters never require
    grad and its outputs are computed under ``torch.no_grad``.

    Batch norm in the teacher: with ``teacher_batch_stats`` true (the default) the teacher
    runs in train mode and normalises with the statistics of the current batch of original
    images, like the student does with its augmented batch. Identical weights and inputs then
    give identical features (zero loss), and the teacher does not depend on running statistics
    that, at the reference batch-norm momentum of 0.001, lag far behind in short runs. The
    teacher's forward pass leaves its buffers unchanged, so they follow only the EMA of the
    student's buffers. With ``teacher_batch_stats`` false the teacher runs in eval mode on
    those EMA running statistics.
    """

    def __init__(
        self,
        name: str = "exemplar",
        flip_prob: float = 0.5,
        noise_std: float = 0.15,
        cutout_size: int = 16,
        ema_decay: float = 0.99,
        projection_dim: int = 128,
        teacher_batch_stats: bool = True,
    ) -> None:
        if not 0.0 <= ema_decay <= 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1], got {ema_decay}")
        if projection_dim < 1:
            raise ValueError(f"projection_dim must be a positive integer, got {projection_dim}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob}")
        if noise_std < 0.0 or cutout_size < 0:
            raise ValueError(f"noise_std and cutout_size must be >= 0, got {noise_std} and {cutout_size}")
        self.name = name
        self.head_name = name
        self.flip_prob = flip_prob
        self.noise_std = noise_std
        self.cutout_size = cutout_size
        self.ema_decay = ema_decay
        self.projection_dim = projection_dim
        self.teacher_batch_stats = teacher_batch_stats
        self.teacher: nn.Sequential | None = None
        self.num_updates = 0
        self._pending_teacher_state: dict[str, torch.Tensor] | None = None

    def make_head(self, feature_dim: int) -> nn.Module:
        """Return the projection head: a linear map from ``feature_dim`` to ``projection_dim``."""
        return nn.Linear(feature_dim, self.projection_dim)

    def loss(self, model: MultiHead, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the mean of 1 - cos(student(augmented x), teacher(x)) over the batch, a scalar in [0, 2]."""
        teacher = self._ensure_teacher(model)
        augmented = exemplar_augment(images, generator, self.flip_prob, self.noise_std, self.cutout_size)
        student = model.head(self.head_name, model.features(augmented))
        target = self._teacher_features(teacher, images)
        return (1.0 - F.cosine_similarity(student, target, dim=1)).mean()

    @torch.no_grad()
    def after_step(self, model: MultiHead) -> None:
        """Move the teacher toward the student (in place): t <- d * t + (1 - d) * s.

        The average covers every parameter and floating-point buffer. Integer buffers such as
        batch norm's ``num_batches_tracked`` are copied from the student.
        """
        teacher = self._ensure_teacher(model)
        student = self._student_modules(model)
        for t_param, s_param in zip(teacher.parameters(), student.parameters(), strict=True):
            t_param.lerp_(s_param.detach(), 1.0 - self.ema_decay)
        for t_buffer, s_buffer in zip(teacher.buffers(), student.buffers(), strict=True):
            if t_buffer.is_floating_point():
                t_buffer.lerp_(s_buffer, 1.0 - self.ema_decay)
            else:
                t_buffer.copy_(s_buffer)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Return the teacher's parameters and buffers (empty before it exists) and the update count."""
        if self.teacher is None:
            teacher_state = dict(self._pending_teacher_state or {})
        else:
            teacher_state = {key: value.detach().cpu().clone() for key, value in self.teacher.state_dict().items()}
        return {"teacher": teacher_state, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict`` output, keeping it until first use when the teacher does not exist yet."""
        self.num_updates = int(state["num_updates"])
        teacher_state = dict(state["teacher"])
        if not teacher_state:
            self.teacher = None
            self._pending_teacher_state = None
        elif self.teacher is None:
            self._pending_teacher_state = teacher_state
        else:
            self.teacher.load_state_dict(teacher_state)

    def _student_modules(self, model: MultiHead) -> nn.Sequential:
        if self.head_name not in model.heads:
            raise KeyError(
                f"the model has no head {self.head_name!r} for Exemplar-MT; heads are {sorted(model.heads)}. "
                f"Build the MultiHead with heads={{task.head_name: task.make_head(feature_dim)}}."
            )
        return nn.Sequential(model.backbone, model.heads[self.head_name])

    def _ensure_teacher(self, model: MultiHead) -> nn.Sequential:
        """Create the teacher as a copy of the student on first use, then load any pending state."""
        if self.teacher is not None:
            return self.teacher
        teacher = copy.deepcopy(self._student_modules(model))
        for param in teacher.parameters():
            param.requires_grad_(False)
        if self._pending_teacher_state is not None:
            teacher.load_state_dict(self._pending_teacher_state)
            self._pending_teacher_state = None
        self.teacher = teacher
        logger.debug("created the Exemplar-MT teacher for head %r", self.head_name)
        return teacher

    @torch.no_grad()
    def _teacher_features(self, teacher: nn.Sequential, images: torch.Tensor) -> torch.Tensor:
        """Return the teacher's projection of ``images``, detached, leaving its buffers unchanged."""
        if not self.teacher_batch_stats:
            teacher.eval()
            return teacher(images)

        teacher.train()
        saved_buffers = [buffer.clone() for buffer in teacher.buffers()]
        features = teacher(images)
        for buffer, saved in zip(teacher.buffers(), saved_buffers, strict=True):
            buffer.copy_(saved)
        return features
