"""The numbers Shi et al. (NeurIPS 2020) report in Tables 1 to 4, as data.

Values are copied from the paper's text, in percent, as printed. Table 1 is the test error of
semi-supervised learning (CIFAR-10 with 4,000 labels, SVHN with 1,000 labels). Table 2 is the
test error of the main task on CelebA. Table 3 lists the attributes ARML weighted most and
least for the main task 5_o_Clock_Shadow. Table 4 is the accuracy of multi-source domain
generalization on PACS with 5 extra labelled images per class of the target domain. The paper prints
"mean ± spread" without saying whether the spread is a standard deviation or an interval, and
Table 4 has no spread at all.

Each row names the method key that this book's runs record (``RunRecord.method``), or None
for a method this book does not implement. Each column names the notebook and the
paper-scale parameter file that produce its runs.
"""

from __future__ import annotations

from dataclasses import dataclass

SSL_NOTEBOOK = "notebooks/03_semi_supervised.ipynb"
MULTILABEL_NOTEBOOK = "notebooks/04_multilabel.ipynb"
DG_NOTEBOOK = "notebooks/05_domain_generalization.ipynb"


@dataclass(frozen=True)
class PaperColumn:
    """One column of a paper table: a dataset (and for PACS a target domain) and its runner inputs."""

    label: str
    dataset: str
    notebook: str
    params_file: str
    target_domain: str | None = None


@dataclass(frozen=True)
class PaperRow:
    """One method of a paper table: its label as printed, the book's method key and the values.

    ``values`` has one ``(mean, spread)`` pair per column, in percent; ``spread`` is None where
    the paper prints none.
    """

    label: str
    method: str | None
    values: tuple[tuple[float, float | None], ...]


@dataclass(frozen=True)
class PaperTable:
    """A table of the paper: which metric it reports and which experiment produces it."""

    name: str
    caption: str
    experiment: str
    metric: str
    columns: tuple[PaperColumn, ...]
    rows: tuple[PaperRow, ...]


TABLE1 = PaperTable(
    name="table1",
    caption="Table 1: test error (%) of semi-supervised learning on CIFAR-10 and SVHN",
    experiment="ssl",
    metric="test_error",
    columns=(
        PaperColumn("CIFAR-10 (4000 labels)", "cifar10", SSL_NOTEBOOK, "notebooks/params/ssl_cifar10.yml"),
        PaperColumn("SVHN (1000 labels)", "svhn", SSL_NOTEBOOK, "notebooks/params/ssl_svhn.yml"),
    ),
    rows=(
        PaperRow("Supervised", "supervised", ((20.26, 0.38), (12.83, 0.47))),
        PaperRow("Π-Model", None, ((16.37, 0.63), (7.19, 0.27))),
        PaperRow("Mean Teacher", None, ((15.87, 0.28), (5.65, 0.47))),
        PaperRow("VAT", None, ((13.86, 0.27), (5.63, 0.20))),
        PaperRow("VAT + EntMin", None, ((13.13, 0.39), (5.35, 0.19))),
        PaperRow("Pseudo-Label", None, ((17.78, 0.57), (7.62, 0.29))),
        PaperRow("S4L (Uniform)", "uniform", ((15.67, 0.29), (7.83, 0.33))),
        PaperRow("S4L + AdaLoss", "adaloss", ((21.06, 0.17), (11.53, 0.39))),
        PaperRow("S4L + GradNorm", "gradnorm", ((14.07, 0.44), (7.68, 0.13))),
        PaperRow("S4L + CosineSim", "cosine", ((15.03, 0.31), (7.02, 0.25))),
        PaperRow("S4L + OL_AUX", "ol_aux", ((16.07, 0.51), (7.82, 0.32))),
        PaperRow("S4L + GridSearch (multiple runs)", "gridsearch", ((13.76, 0.22), (6.07, 0.17))),
        PaperRow("S4L + ARML (ours)", "arml", ((13.68, 0.35), (5.89, 0.22))),
    ),
)

TABLE2 = PaperTable(
    name="table2",
    caption="Table 2: test error (%) of the main task on CelebA",
    experiment="multilabel",
    metric="test_error",
    columns=(
        PaperColumn("CelebA", "celeba", MULTILABEL_NOTEBOOK, "notebooks/params/mlc_celeba.yml"),
    ),
    # NOTE: the paper does not define its CelebA "Baseline"; it is matched to uniform weights.
    rows=(
        PaperRow("Baseline", "uniform", ((6.70, 0.18),)),
        PaperRow("AdaLoss", "adaloss", ((7.21, 0.11),)),
        PaperRow("GradNorm", "gradnorm", ((6.44, 0.07),)),
        PaperRow("CosineSim", "cosine", ((6.51, 0.14),)),
        PaperRow("OL_AUX", "ol_aux", ((6.32, 0.17),)),
        PaperRow("ARML (ours)", "arml", ((5.97, 0.18),)),
    ),
)

TABLE4 = PaperTable(
    name="table4",
    caption=(
        "Table 4: accuracy (%) of multi-source domain generalization on PACS "
        "with 5 extra labelled images per class of the target domain"
    ),
    experiment="dg",
    metric="test_accuracy",
    columns=tuple(
        PaperColumn(label, "pacs", DG_NOTEBOOK, f"notebooks/params/dg_pacs_{domain}.yml", target_domain=domain)
        for label, domain in (("Sketch", "sketch"), ("Art", "art_painting"), ("Cartoon", "cartoon"), ("Photo", "photo"))
    ),
    rows=(
        PaperRow("Baseline (no extra labels)", "baseline",
                 ((75.34, None), (81.25, None), (77.35, None), (95.93, None))),
        PaperRow("D-SAM (no extra labels)", None,
                 ((77.83, None), (77.33, None), (72.43, None), (95.30, None))),
        PaperRow("JiGen (no extra labels)", None,
                 ((71.35, None), (79.42, None), (75.25, None), (96.03, None))),
        PaperRow("Shape-bias (no extra labels)", None,
                 ((78.62, None), (83.01, None), (79.39, None), (96.83, None))),
        PaperRow("JT", "jt", ((78.52, None), (83.94, None), (81.36, None), (97.01, None))),
        PaperRow("FADA", "fada", ((79.23, None), (83.64, None), (79.39, None), (97.07, None))),
        PaperRow("Baseline + ARML", "baseline_arml",
                 ((79.35, None), (82.52, None), (77.30, None), (95.99, None))),
        PaperRow("JT + ARML", "jt_arml", ((80.47, None), (85.70, None), (81.01, None), (97.22, None))),
        PaperRow("FADA + ARML", "fada_arml", ((79.46, None), (85.16, None), (81.23, None), (97.01, None))),
    ),
)

TABLES: dict[str, PaperTable] = {table.name: table for table in (TABLE1, TABLE2, TABLE4)}

# Table 3: the five auxiliary attributes with the highest and the lowest ARML weights for
# the CelebA main task 5_o_Clock_Shadow, in the paper's order.
TABLE3_MAIN_TASK = "5_o_Clock_Shadow"
TABLE3_MOST_RELATED = ("Mustache", "Bald", "Sideburns", "Rosy_Cheeks", "Goatee")
TABLE3_LEAST_RELATED = ("Mouth_Slightly_Open", "Male", "Attractive", "Heavy_Makeup", "Smiling")


def get_table(name: str) -> PaperTable:
    """Return the paper table called ``name`` ("table1", "table2" or "table4")."""
    key = name.lower().replace(" ", "")
    if key not in TABLES:
        raise ValueError(f"unknown paper table {name!r}; valid names are {', '.join(TABLES)}")
    return TABLES[key]
