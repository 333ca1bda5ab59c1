"""Per-task gradients over an explicit list of shared parameters.

Every reweighting method that looks at gradients needs, after one forward pass, the
gradient of each task loss with respect to the shared parameters, as rows of a matrix
of shape (num_tasks, num_shared_values). This module computes that matrix in three ways:

- ``"loop"``: one ``torch.autograd.grad`` call per task over the retained graph. Exact.
- ``"batched"``: one vectorised call with ``is_grads_batched=True``. Exact; it can be faster
  on a GPU and is often slower on a CPU, so measure before choosing it.
- gradients at the shared features (``feature_gradients``): the cheap approximation for
  many tasks, where each row is d loss / d h for the backbone output h.

A parameter that a task does not reach gets a zero row segment, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

GradMode = Literal["loop", "batched"]


def task_gradients(
    losses: Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    mode: GradMode = "loop",
    retain_graph: bool = True,
) -> torch.Tensor:
    """Return the flattened gradient of each scalar loss over ``params``.

    Returns a tensor of shape (len(losses), sum of numel over params), detached. The graph
    is kept when ``retain_graph`` is true so that a later backward can reuse it; the caller
    drops it by letting the losses go out of scope, so nothing leaks across steps.
    """
    params = list(params)
    if not params:
        raise ValueError("params is empty: pass the shared parameters the tasks have in common")
    if not losses:
        raise ValueError("losses is empty: pass at least one scalar loss")
    for index, loss in enumerate(losses):
        if loss.dim() != 0:
            raise ValueError(f"loss {index} must be a scalar, got shape {tuple(loss.shape)}")

    if mode == "loop":
        rows = []
        for index, loss in enumerate(losses):
            keep = retain_graph or index < len(losses) - 1
            rows.append(_flat_grad(loss, params, retain_graph=keep))
        return torch.stack(rows)
    if mode == "batched":
        return _batched_grads(losses, params, retain_graph)
    raise ValueError(f"unknown gradient mode {mode!r}; valid modes are 'loop' and 'batched'")


def feature_gradients(
    losses: Sequence[torch.Tensor], features: torch.Tensor, retain_graph: bool = True
) -> torch.Tensor:
    """Return d loss / d features for each loss, flattened to shape (len(losses), features.numel()).

    ``features`` is the shared representation (for example the backbone output); it must be
    part of each loss's graph. A loss that does not depend on it gets a zero row.
    """
    if not features.requires_grad:
        raise ValueError("features does not require grad: pass the backbone output before detach()")
    return task_gradients(losses, [features], mode="loop", retain_graph=retain_graph)


def _flat_grad(loss: torch.Tensor, params: list[torch.Tensor], retain_graph: bool) -> torch.Tensor:
    if not loss.requires_grad:
        return torch.cat([torch.zeros_like(p).reshape(-1) for p in params]).detach()
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    pieces = [
        torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
        for p, g in zip(params, grads)
    ]
    return torch.cat(pieces).detach()


def _batched_grads(
    losses: Sequence[torch.Tensor], params: list[torch.Tensor], retain_graph: bool
) -> torch.Tensor:
    # Losses that do not require grad cannot enter the vectorised call, so they get zero rows.
    active = [i for i, loss in enumerate(losses) if loss.requires_grad]
    total = sum(p.numel() for p in params)
    reference = params[0]
    out = torch.zeros(len(losses), total, dtype=reference.dtype, device=reference.device)
    if not active:
        return out
    stacked = torch.stack([losses[i] for i in active])
    eye = torch.eye(len(active), dtype=stacked.dtype, device=stacked.device)
    grads = torch.autograd.grad(
        stacked, params, grad_outputs=eye, retain_graph=retain_graph,
        allow_unused=True, is_grads_batched=True,
    )
    pieces = [
        torch.zeros(len(active), p.numel(), dtype=p.dtype, device=p.device) if g is None
        else g.reshape(len(active), -1)
        for p, g in zip(params, grads)
    ]
    out[active] = torch.cat(pieces, dim=1).detach()
    return out


def gram_matrix(grads: torch.Tensor) -> torch.Tensor:
    """Return the matrix of inner products grads @ grads.T, shape (T, T)."""
    return grads @ grads.T


def cosine_matrix(grads: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Return pairwise cosines between gradient rows; a zero row has cosine 0 with everything."""
    norms = grads.norm(dim=1).clamp_min(eps)
    return (grads @ grads.T) / (norms[:, None] * norms[None, :])


def add_flat_to_grad(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Accumulate a flat gradient vector into ``.grad`` of each parameter, as backward would."""
    offset = 0
    for p in params:
        n = p.numel()
        piece = flat[offset:offset + n].view_as(p).to(p.dtype)
        if p.grad is None:
            p.grad = piece.clone()
        else:
            p.grad.add_(piece)
        offset += n
    if offset != flat.numel():
        raise ValueError(f"flat gradient has {flat.numel()} values but params hold {offset}")


def graph_leaf_parameters(roots: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Return the leaf tensors requiring grad that the graphs of ``roots`` reach, in a stable order.

    Weighters use it to find the task-specific parameters (heads) without a list of them:
    everything a loss reaches that is not shared.
    """
    seen_nodes: set[int] = set()
    leaves: dict[int, torch.Tensor] = {}
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        variable = getattr(node, "variable", None)
        if variable is not None:
            leaves.setdefault(id(variable), variable)
            continue
        stack.extend(next_node for next_node, _ in node.next_functions)
    return list(leaves.values())
