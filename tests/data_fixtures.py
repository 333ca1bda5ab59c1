"""Writers of tiny dataset files in the real on-disk formats, for the data tests.

Each writer returns the labels it wrote so tests can compare what the loaders read back.
Import these helpers explicitly; they are not pytest fixtures.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "data_scripts"

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def import_script(name: str):
    """Import ``data_scripts/<name>.py`` as a module (the scripts import ``_verify`` as a sibling)."""
    if str(SCRIPTS_DIR) not in sys.path:
        sys.path.insert(0, str(SCRIPTS_DIR))
    __import__(name)
    return sys.modules[name]


def balanced_labels(num_classes: int, per_class: int, seed: int) -> np.ndarray:
    """Return ``per_class`` copies of each class in a seeded random order."""
    labels = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(labels)


def write_cifar10(root: Path, per_batch: int = 20, num_test: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Write ROOT/cifar-10-batches-py with 5 training batches, a test batch and batches.meta.

    The pickles use the real keys (``batch_label``, ``labels``, ``data``, ``filenames``) and
    ``data`` is uint8 of shape (N, 3072), the red plane first, then green, then blue.
    Returns ``(train_labels, test_labels)``.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_labels = balanced_labels(10, per_batch * 5 // 10, seed=1)
    test_labels = balanced_labels(10, num_test // 10, seed=2)
    batches = [(f"data_batch_{i + 1}", train_labels[i * per_batch:(i + 1) * per_batch]) for i in range(5)]
    batches.append(("test_batch", test_labels))
    for name, labels in batches:
        entry = {
            "batch_label": f"{name} of 5",
            "labels": [int(x) for x in labels],
            "data": rng.integers(0, 256, size=(labels.size, 3072), dtype=np.uint8),
            "filenames": [f"img_{i}.png" for i in range(labels.size)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle)
    meta = {
        "num_cases_per_batch": per_batch,
        "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        "num_vis": 3072,
    }
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle)
    return train_labels, test_labels


def write_svhn(root: Path, num_train: int = 100, num_test: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Write ROOT/svhn/{train,test}_32x32.mat: X uint8 (32, 32, 3, N), y uint8 (N, 1) with 10 for digit 0.

    Returns the digit labels (0..9) of both splits.
    """
    from scipy.io import savemat

    folder = root / "svhn"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    digits = []
    for name, n, seed in (("train_32x32.mat", num_train, 4), ("test_32x32.mat", num_test, 5)):
        labels = balanced_labels(10, n // 10, seed)
        stored = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
        images = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        savemat(folder / name, {"X": images, "y": stored})
        digits.append(labels)
    return digits[0], digits[1]


def write_celeba(root: Path, partition: tuple[int, int, int] = (200, 20, 20), header_trailing_space: bool = True) -> np.ndarray:
    """Write ROOT/celeba with the five annotation files and tiny JPEGs, CRLF line endings like the originals.

    ``partition`` gives the number of train, valid and test images. Returns the raw -1/1
    attribute matrix of shape (N, 40) in file order.
    """
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(6)
    total = sum(partition)
    names = [f"{i + 1:06d}.jpg" for i in range(total)]
    split_ids = np.repeat([0, 1, 2], partition)
    attrs = rng.choice([-1, 1], size=(total, len(CELEBA_ATTRIBUTES)))

    def write(filename: str, lines: list[str]) -> None:
        (folder / filename).write_bytes("".join(line + "\r\n" for line in lines).encode())

    header = " ".join(CELEBA_ATTRIBUTES) + (" " if header_trailing_space else "")
    write("list_attr_celeba.txt", [str(total), header] + [
        name + "".join(f" {v:2d}" for v in row) for name, row in zip(names, attrs)
    ])
    write("list_eval_partition.txt", [f"{name} {s}" for name, s in zip(names, split_ids)])
    write("identity_CelebA.txt", [f"{name} {i % 7 + 1}" for i, name in enumerate(names)])
    write("list_bbox_celeba.txt", [str(total), "image_id x_1 y_1 width height"] + [
        f"{name}    95    71   226   313" for name in names
    ])
    landmark_header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    write("list_landmarks_align_celeba.txt", [str(total), landmark_header] + [
        f"{name}  69  109  106  113   77  142   73  152  108  154" for name in names
    ])
    for name in names:
        Image.new("RGB", (6, 7), color=(10, 20, 30)).save(folder / "img_align_celeba" / name)
    return attrs


def write_pacs(root: Path, per_class: int = 10, domains: tuple[str, ...] | None = None) -> None:
    """Write ROOT/pacs/<domain>/<class>/ with ``per_class`` tiny images (JPEG, PNG for sketch)."""
    from arml_core.data.pacs import CLASSES, DOMAINS

    for domain_index, domain in enumerate(domains or DOMAINS):
        suffix = ".png" if domain == "sketch" else ".jpg"
        for class_index, name in enumerate(CLASSES):
            folder = root / "pacs" / domain / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                color = (class_index * 30, domain_index * 60, i)
                Image.new("RGB", (5, 5), color=color).save(folder / f"pic_{i:03d}{suffix}")
