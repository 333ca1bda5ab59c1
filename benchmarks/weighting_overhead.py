"""Per-iteration cost of every weighter divided by Uniform's, measured side by side.

Each iteration is one training step: forward, the weighter's backward, the optimiser step and
the weighter's post-step hook. Variants run round-robin in one process, each measurement is a
block of ``--block`` consecutive iterations (20 by default, so that ARML with update_every=20
makes exactly one alpha update per block), the block order rotates every repeat, and the table
reports the median time per iteration over the repeats.

Cases:
  (a) WRN-28-2 backbone (``arml_core.models.wrn``), batch 64, 32x32 inputs, K = 2 auxiliary heads.
  (b) torchvision ResNet-18 (weights=None) with 40 binary heads at 64x64 inputs, K = 39, with
      ARML in grad_mode="features".
``--quick`` shrinks both cases (WRN-10-1 at 16x16 with batch 4, ResNet-18 at 16x16 with
batch 2) and takes 2 repeats, to finish in about a minute on two idle CPU cores. ``--libmtl-path DIR`` adds LibMTL 1.1.5's GradNorm, UW and EW
as peers when LibMTL was installed there with ``pip install --no-deps --target DIR LibMTL==1.1.5``.

Usage: python benchmarks/weighting_overhead.py [--quick] [--repeats N] [--threads N]
"""

from __future__ import annotations

import os

# OpenMP busy-waits by default, and one busy neighbour then slows a torch step by a large
# factor, so passive waiting must be set before torch is imported.
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import argparse  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from arml_core.models.resnet import resnet18_backbone  # noqa: E402
from arml_core.models.wrn import WideResNet  # noqa: E402
from arml_core.weighting import Uniform, make_weighter  # noqa: E402
from arml_core.weighting.base import StepInfo  # noqa: E402

BUSY_LOAD = 0.5
WeighterFactory = Callable[[list[torch.Tensor]], object]


@dataclass
class Case:
    """One benchmark setting: a backbone, its heads, one fixed batch and the variants to time."""

    name: str
    backbone: nn.Module
    feature_dim: int
    head_classes: list[int]
    images: torch.Tensor
    variants: dict[str, WeighterFactory]


class MultiHeadNet(nn.Module):
    """Backbone followed by one linear head per task; head 0 is the main task."""

    def __init__(self, backbone: nn.Module, feature_dim: int, head_classes: list[int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList(nn.Linear(feature_dim, c) for c in head_classes)


class ForwardPlusBackwards:
    """Lower bound of exact ARML: one forward, then one full backward per task, no weighting."""

    def backward(self, main_loss, aux_losses, shared_params, features=None) -> StepInfo:
        losses = [main_loss, *aux_losses]
        for index, loss in enumerate(losses):
            loss.backward(retain_graph=index < len(losses) - 1)
        return StepInfo()

    def after_optimizer_step(self, lr: float) -> None:
        pass


def task_losses(model: MultiHeadNet, images: torch.Tensor, labels: list[torch.Tensor]):
    """Return the shared features and one loss per head (cross-entropy, or BCE for one logit)."""
    features = model.backbone(images)
    losses = []
    for head, target in zip(model.heads, labels):
        logits = head(features)
        if logits.shape[1] == 1:
            losses.append(F.binary_cross_entropy_with_logits(logits.squeeze(1), target))
        else:
            losses.append(F.cross_entropy(logits, target))
    return features, losses


def make_labels(case: Case, generator: torch.Generator) -> list[torch.Tensor]:
    batch = case.images.shape[0]
    labels = []
    for classes in case.head_classes:
        if classes == 1:
            labels.append(torch.randint(0, 2, (batch,), generator=generator).float())
        else:
            labels.append(torch.randint(0, classes, (batch,), generator=generator))
    return labels


def load_libmtl(path: str) -> types.ModuleType:
    """Import LibMTL.weighting from ``path``, with a stand-in for ``torchvision.models.utils``.

    LibMTL 1.1.5 imports ``load_state_dict_from_url`` from ``torchvision.models.utils``, a
    module that newer torchvision releases removed. ``torch.hub`` provides the same function.
    """
    stand_in = types.ModuleType("torchvision.models.utils")
    stand_in.load_state_dict_from_url = torch.hub.load_state_dict_from_url
    sys.modules.setdefault("torchvision.models.utils", stand_in)
    sys.path.insert(0, path)
    import LibMTL.weighting as libmtl_weighting

    return libmtl_weighting


def libmtl_peer(cls: type, num_tasks: int, shared: list[torch.Tensor], **kwargs) -> object:
    """Wrap a LibMTL weighting class so the benchmark calls it like a weighter here."""

    class Peer(cls):
        def __init__(self) -> None:
            super().__init__()
            self.task_num = num_tasks
            self.device = shared[0].device
            self.rep_grad = False
            self.epoch = 1
            self.train_loss_buffer = np.ones((num_tasks, 1))
            self.init_param()

        def get_share_params(self):
            return shared

        def zero_grad_share_params(self) -> None:
            # LibMTL calls encoder.zero_grad(), which sets .grad to None in torch >= 2.0, and
            # its GradNorm then writes into param.grad.data; zeros keep that path working.
            for p in shared:
                if p.grad is not None:
                    p.grad.zero_()

        def backward(self, main_loss, aux_losses, shared_params, features=None) -> StepInfo:
            super().backward(torch.stack([main_loss, *aux_losses]), **kwargs)
            return StepInfo()

        def after_optimizer_step(self, lr: float) -> None:
            pass

    return Peer()


def build_cases(quick: bool, batch_size: int | None, libmtl: types.ModuleType | None, device: torch.device) -> list[Case]:
    """Return case (a), WRN with K = 2, and case (b), ResNet-18 with K = 39."""
    generator = torch.Generator().manual_seed(0)

    wrn = WideResNet(depth=10, widen_factor=1) if quick else WideResNet(depth=28, widen_factor=2)
    size_a = 16 if quick else 32
    batch_a = batch_size or (4 if quick else 64)
    variants_a: dict[str, WeighterFactory] = {
        "uniform": lambda shared: Uniform(2),
        "fwd+3bwd bound": lambda shared: ForwardPlusBackwards(),
        "arml exact": lambda shared: make_weighter("arml", 2, temperature=0.0),
        "arml exact+langevin": lambda shared: make_weighter("arml", 2, temperature=1e-4),
        "arml batched": lambda shared: make_weighter("arml", 2, temperature=0.0, grad_mode="batched"),
        "arml every20": lambda shared: make_weighter("arml", 2, temperature=0.0, update_every=20),
        "adaloss": lambda shared: make_weighter("adaloss", 2),
        "uncertainty": lambda shared: make_weighter("uncertainty", 2),
        "gradnorm": lambda shared: make_weighter("gradnorm", 2),
        "cosine": lambda shared: make_weighter("cosine", 2),
        "ol_aux": lambda shared: make_weighter("ol_aux", 2),
    }
    if libmtl is not None:
        variants_a["libmtl GradNorm"] = lambda shared: libmtl_peer(libmtl.GradNorm, 3, shared, alpha=1.5)
        variants_a["libmtl UW"] = lambda shared: libmtl_peer(libmtl.UW, 3, shared)
        variants_a["libmtl EW"] = lambda shared: libmtl_peer(libmtl.EW, 3, shared)
    case_a = Case(
        name=f"(a) {'WRN-10-1' if quick else 'WRN-28-2'}, batch {batch_a}, {size_a}x{size_a}, K=2",
        backbone=wrn, feature_dim=wrn.feature_dim, head_classes=[10, 4, 4],
        images=torch.randn(batch_a, 3, size_a, size_a, generator=generator), variants=variants_a,
    )

    size_b = 16 if quick else 64
    batch_b = batch_size or (2 if quick else 32)
    variants_b: dict[str, WeighterFactory] = {
        "uniform": lambda shared: Uniform(39),
        "arml features": lambda shared: make_weighter("arml", 39, temperature=0.0, grad_mode="features"),
        "arml features every20": lambda shared: make_weighter(
            "arml", 39, temperature=0.0, grad_mode="features", update_every=20
        ),
        "adaloss": lambda shared: make_weighter("adaloss", 39),
        "uncertainty": lambda shared: make_weighter("uncertainty", 39),
        "gradnorm": lambda shared: make_weighter("gradnorm", 39),
    }
    if libmtl is not None:
        variants_b["libmtl UW"] = lambda shared: libmtl_peer(libmtl.UW, 40, shared)
    case_b = Case(
        name=f"(b) ResNet-18, batch {batch_b}, {size_b}x{size_b}, K=39",
        backbone=resnet18_backbone(), feature_dim=512, head_classes=[1] * 40,
        images=torch.randn(batch_b, 3, size_b, size_b, generator=generator), variants=variants_b,
    )
    for case in (case_a, case_b):
        case.images = case.images.to(device)
    return [case_a, case_b]


def time_case(case: Case, repeats: int, block: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Return the median seconds per iteration of each variant, variants interleaved."""
    labels = [y.to(device) for y in make_labels(case, torch.Generator().manual_seed(1))]
    runners = {}
    for label, factory in case.variants.items():
        model = MultiHeadNet(copy.deepcopy(case.backbone), case.feature_dim, case.head_classes).to(device)
        shared = list(model.backbone.parameters())
        weighter = factory(shared)
        params = list(model.parameters())
        if isinstance(weighter, nn.Module):
            params += list(weighter.parameters())
        optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        runners[label] = (model, shared, weighter, optimizer)

    def run_block(label: str, iterations: int) -> float:
        model, shared, weighter, optimizer = runners[label]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iterations):
            optimizer.zero_grad(set_to_none=True)
            features, losses = task_losses(model, case.images, labels)
            info = weighter.backward(losses[0], losses[1:], shared, features=features)
            if not info.skip_model_step:
                optimizer.step()
            weighter.after_optimizer_step(0.01)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / iterations

    names = list(runners)
    for label in names:
        run_block(label, warmup)
    samples: dict[str, list[float]] = {label: [] for label in names}
    for repeat in range(repeats):
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for label in order:
            samples[label].append(run_block(label, block))
    return {label: statistics.median(values) for label, values in samples.items()}


def print_load(when: str) -> tuple[float, float, float]:
    load = os.getloadavg()
    print(f"load average {when}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min)")
    if load[0] > BUSY_LOAD:
        print(f"WARNING: the machine is not idle (1-min load {load[0]:.2f} > {BUSY_LOAD}); ratios may be skewed",
              file=sys.stderr)
    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed blocks per variant, median taken (default 5, or 2 with --quick)")
    parser.add_argument("--block", type=int, default=20, help="iterations per timed block")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations per variant before timing")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, about a minute on 2 CPU cores")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size of both cases (default per case)")
    parser.add_argument("--cases", default="a,b", help="comma-separated cases to run: a, b")
    parser.add_argument("--device", default="cpu", help="torch device, for example cpu or cuda")
    parser.add_argument("--libmtl-path", default=None, help="directory holding LibMTL 1.1.5 (pip --target)")
    args = parser.parse_args()

    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    libmtl = load_libmtl(args.libmtl_path) if args.libmtl_path else None
    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
          f"device {device}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, repeats {args.repeats}, block {args.block}, "
          f"warmup {args.warmup}")
    print_load("before")

    cases = build_cases(args.quick, args.batch_size, libmtl, device)
    selected = [case for key, case in zip("ab", cases) if key in args.cases.split(",")]
    results = []
    for case in selected:
        print(f"timing {case.name}: {len(case.variants)} variants", file=sys.stderr, flush=True)
        results.append((case, time_case(case, args.repeats, args.block, args.warmup, device)))

    print(f"\n{'case':<42} {'variant':<24} {'ms/iter':>9} {'x uniform':>10}")
    for case, medians in results:
        for label, seconds in medians.items():
            print(f"{case.name:<42} {label:<24} {1000 * seconds:9.1f} {seconds / medians['uniform']:10.2f}")

    print(f"\n{'target':<58} {'measured':>9} {'limit':>6}  status")
    for case, medians in results:
        checks = []
        if "arml exact" in medians:
            checks.append(("exact ARML / (forward + K+1 backward)", medians["arml exact"] / medians["fwd+3bwd bound"], 1.10))
            checks.append(("ARML update_every=20 / Uniform", medians["arml every20"] / medians["uniform"], 1.15))
        if "arml features" in medians:
            checks.append(("ARML features K=39 / Uniform", medians["arml features"] / medians["uniform"], 1.5))
        for text, ratio, limit in checks:
            status = "met" if ratio <= limit else "NOT MET"
            print(f"{text:<58} {ratio:9.2f} {limit:6.2f}  {status}")
    print()
    print_load("after")


if __name__ == "__main__":
    main()
