"""The GRAFF table's reference numbers: the paper's, the official code's on this data, and the targets.

The reproduction (``continuous-gnn reproduce``) holds each dataset's linear-GRAFF result against
:data:`TARGETS`: max(paper's best GRAFF mean - 1 paper std, the official code run here), the paper being arXiv
v1 Table 1 (better of GRAFF (DD) and GRAFF (D)) and "the official code run here" graff-notes §15.
"""

from __future__ import annotations

__all__ = ["MODELS", "LINEAR", "OPTIONAL", "DATASETS", "NAMES", "PAPER_DD", "PAPER_D", "OFFICIAL_HERE", "TARGETS",
           "TARGET_NOTES", "paper_best", "formula_target", "stretch_bar"]

#: The presets the reproduction runs, by their names in the table.
MODELS = {"graff": "GRAFF", "graff_tuned": "GRAFF-tuned", "graff_nl": "GRAFF-NL"}
#: Linear-GRAFF presets that compete, on validation accuracy, for the number held against the target.
LINEAR = ("graff", "graff_tuned")
#: Presets that need not exist for every dataset.
OPTIONAL = ("graff_tuned",)
#: The paper's nine datasets, in the order of its table.
DATASETS = ("texas", "wisconsin", "cornell", "film", "squirrel", "chameleon", "citeseer", "pubmed", "cora")
#: Each dataset's name as the table prints it.
NAMES = {"texas": "Texas", "wisconsin": "Wisconsin", "cornell": "Cornell", "film": "Film", "squirrel": "Squirrel",
         "chameleon": "Chameleon", "citeseer": "CiteSeer", "pubmed": "PubMed", "cora": "Cora"}

#: arXiv 2206.10991 v1, Table 1: (mean, std) of GRAFF (DD) (graff-notes §10.1).
PAPER_DD = {"texas": (88.38, 4.53), "wisconsin": (87.45, 2.94), "cornell": (83.24, 6.49), "film": (36.09, 0.81),
            "squirrel": (54.52, 1.37), "chameleon": (71.08, 1.75), "citeseer": (76.92, 1.70),
            "pubmed": (88.95, 0.52), "cora": (87.61, 0.97)}
#: The same table's (mean, std) of GRAFF (D).
PAPER_D = {"texas": (88.11, 5.57), "wisconsin": (88.83, 3.29), "cornell": (84.05, 6.10), "film": (37.11, 1.08),
           "squirrel": (47.36, 1.89), "chameleon": (66.78, 1.28), "citeseer": (77.30, 1.85),
           "pubmed": (90.04, 0.41), "cora": (88.01, 1.03)}
#: The official code with its best_lin parameters on the shared data (graff-notes §15): (mean, std, splits).
OFFICIAL_HERE = {"texas": (85.14, 6.86, 10), "wisconsin": (86.27, 4.88, 10), "cornell": (71.62, 5.02, 10),
                 "film": (35.75, 1.06, 10), "squirrel": (58.41, 0.55, 3), "chameleon": (69.32, 1.84, 10),
                 "citeseer": (74.25, 2.71, 10), "cora": (87.85, 1.26, 10)}
#: The issue's target table.
TARGETS = {"texas": 85.14, "wisconsin": 86.27, "cornell": 71.62, "film": 36.03, "squirrel": 58.41,
           "chameleon": 69.33, "citeseer": 75.45, "pubmed": 89.63, "cora": 87.85}
#: Why a target differs from the issue's formula, by dataset.
TARGET_NOTES = {
    "cornell": "the formula gives 77.95 (paper 84.05 - 6.10), but the paper's Cornell ran on the pre-July-2022 "
               "geom-gcn file, whose features are a copy of Texas's; on the corrected file in the shared data the "
               "issue sets the target to the official code's 71.62",
}


def paper_best(name: str) -> tuple[float, float, str]:
    """The paper's better GRAFF variant on a dataset: (mean, std, "DD" or "D")."""
    dd, d = PAPER_DD[name], PAPER_D[name]
    return (*dd, "DD") if dd[0] >= d[0] else (*d, "D")


def formula_target(name: str) -> float:
    """max(paper's best mean - its std, the official code here): the target's formula (see :data:`TARGET_NOTES`)."""
    mean, std, _ = paper_best(name)
    official = OFFICIAL_HERE.get(name)
    return round(max(mean - std, official[0] if official else -1.0), 2)


def stretch_bar(name: str) -> float:
    """The stretch goal's bar: max(paper's best mean, the official code here)."""
    official = OFFICIAL_HERE.get(name)
    return max(paper_best(name)[0], official[0] if official else -1.0)
