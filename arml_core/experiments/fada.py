"""FADA: few-shot adversarial domain adaptation, the compact version used as a DG baseline.

Source: Motiian, Jones, Iranmanesh and Doretto, "Few-Shot Adversarial Domain Adaptation",
NeurIPS 2017. Pairs of images are sorted into four groups by domain and class:

    G1: (source, source), same class      G2: (source, target), same class
    G3: (source, source), different class G4: (source, target), different class

A domain-class discriminator (DCD) sees the concatenated features of a pair and predicts its
group. Training alternates a DCD step (features fixed, cross-entropy on the true groups) with
an encoder step whose confusion loss asks the DCD, with its weights fixed, to read G2 pairs
as G1 and G4 pairs as G3: target features must look like source features of the same class
and keep their distance to the other classes.

Simplifications of this book, stated where they matter to a reader:
- No separate stages: there is no source-only pretraining stage before the DCD is trained.
  The DCD takes ``dcd_steps`` steps at every training iteration, and the confusion loss is
  switched on after ``warmup`` iterations (Motiian et al. run the stages to convergence).
- Pairs are drawn with replacement from the current batches: the sources of a multi-source
  problem are pooled into one source domain, and the target images are the labelled ones.
- The confusion loss is added to the main (target) loss with weight ``gamma``, so under ARML
  its gradient is part of g_m.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

G1, G2, G3, G4 = 0, 1, 2, 3
NUM_GROUPS = 4


def pair_groups(source_labels: torch.Tensor, target_labels: torch.Tensor) -> dict[int, torch.Tensor]:
    """Return every pair of each group as an int64 tensor (P, 2) of indices.

    The first index of a pair points into ``source_labels``. For G1 and G3 the second index
    also points into ``source_labels`` (unordered pairs i < j); for G2 and G4 it points into
    ``target_labels``. A group without pairs is an empty (0, 2) tensor.
    """
    same_source = source_labels[:, None] == source_labels[None, :]
    upper = torch.ones_like(same_source).triu(diagonal=1)
    same_target = source_labels[:, None] == target_labels[None, :]
    return {
        G1: torch.nonzero(same_source & upper),
        G2: torch.nonzero(same_target),
        G3: torch.nonzero(~same_source & upper),
        G4: torch.nonzero(~same_target),
    }


def sample_pairs(groups: dict[int, torch.Tensor], per_group: int, generator: torch.Generator) -> dict[int, torch.Tensor]:
    """Draw ``per_group`` pairs with replacement from every non-empty group."""
    drawn = {}
    for group, pairs in groups.items():
        if len(pairs):
            drawn[group] = pairs[torch.randint(len(pairs), (per_group,), generator=generator)]
    return drawn


class DomainClassDiscriminator(nn.Module):
    """MLP on a concatenated pair of features (B, 2 * feature_dim) -> logits of the 4 groups (B, 4)."""

    def __init__(self, feature_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(2 * feature_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, NUM_GROUPS),
        )

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.layers(pairs)


class FADA:
    """The DCD, its optimiser and the confusion loss of the encoder step.

    Args:
        feature_dim: size of the backbone features.
        gamma: weight of the confusion loss in the main loss.
        lr: Adam learning rate of the DCD.
        pairs_per_group: pairs drawn from each group per step.
        dcd_steps: DCD updates per training iteration.
        warmup: iterations before the confusion loss is switched on (the DCD trains throughout).
    """

    def __init__(self, feature_dim: int, gamma: float = 0.1, lr: float = 1e-3, pairs_per_group: int = 32,
                 dcd_steps: int = 1, warmup: int = 0, device: torch.device | str = "cpu") -> None:
        if gamma < 0 or pairs_per_group < 1 or dcd_steps < 0 or warmup < 0:
            raise ValueError(
                f"FADA needs gamma >= 0, pairs_per_group >= 1, dcd_steps >= 0 and warmup >= 0, got "
                f"gamma={gamma}, pairs_per_group={pairs_per_group}, dcd_steps={dcd_steps}, warmup={warmup}"
            )
        self.dcd = DomainClassDiscriminator(feature_dim).to(device)
        self.optimizer = torch.optim.Adam(self.dcd.parameters(), lr=lr)
        self.gamma = gamma
        self.pairs_per_group = pairs_per_group
        self.dcd_steps = dcd_steps
        self.warmup = warmup
        self.calls = 0
        self.last_dcd_loss = float("nan")

    def confusion_loss(self, source_features: torch.Tensor, source_labels: torch.Tensor,
                       target_features: torch.Tensor, target_labels: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
        """Train the DCD on detached pair features, then return gamma times the confusion loss.

        The returned scalar depends on the features (so it trains the encoder) but not on the
        DCD's parameters. Before ``warmup`` iterations have passed it is a zero that still
        belongs to the graph.
        """
        self.calls += 1
        groups = pair_groups(source_labels.cpu(), target_labels.cpu())
        for _ in range(self.dcd_steps):
            drawn = sample_pairs(groups, self.pairs_per_group, generator)
            inputs, targets = self._pair_inputs(drawn, source_features.detach(), target_features.detach())
            loss = F.cross_entropy(self.dcd(inputs), targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.last_dcd_loss = float(loss.detach())

        if self.calls <= self.warmup or self.gamma == 0:
            return 0.0 * target_features.sum()
        confused = {G1: groups[G2], G3: groups[G4]}  # G2 pairs must pass as G1, G4 pairs as G3
        drawn = sample_pairs(confused, self.pairs_per_group, generator)
        drawn = {G2 if group == G1 else G4: pairs for group, pairs in drawn.items()}
        inputs, true_groups = self._pair_inputs(drawn, source_features, target_features)
        wanted = torch.where(true_groups == G2, G1, G3)
        frozen = {name: p.detach() for name, p in self.dcd.named_parameters()}
        logits = functional_call(self.dcd, frozen, (inputs,))
        return self.gamma * F.cross_entropy(logits, wanted)

    @staticmethod
    def _pair_inputs(drawn: dict[int, torch.Tensor], source: torch.Tensor,
                     target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, groups = [], []
        for group, pairs in drawn.items():
            second = source if group in (G1, G3) else target
            pairs = pairs.to(source.device)
            inputs.append(torch.cat([source[pairs[:, 0]], second[pairs[:, 1]]], dim=1))
            groups.append(torch.full((len(pairs),), group, dtype=torch.long, device=source.device))
        return torch.cat(inputs), torch.cat(groups)

    def state_dict(self) -> dict[str, Any]:
        """Return the DCD, its optimiser and the call count, for exact resume."""
        return {"dcd": self.dcd.state_dict(), "optimizer": self.optimizer.state_dict(), "calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state returned by ``state_dict``."""
        self.dcd.load_state_dict(state["dcd"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.calls = int(state["calls"])
