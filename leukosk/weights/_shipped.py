"""Trained models shipped inside the package, torchvision-style.

Each member of :class:`LeukoskWeights` names a model file under
``leukosk/pretrained/`` (a file written by
:meth:`VGG19LeukocyteClassifier.save`, float16 tensors) and carries what a
user needs to trust and use it: the file's SHA-256, the class names, the
input size and preprocessing, the network it fits, the recipe that made it,
the data it saw, and its measured accuracy with the machine that measured it
(``member.meta``). Two uses:

* ``load_pretrained()`` returns a fitted classifier, ready to ``predict``;
* ``VGG19LeukocyteClassifier(weights=LeukoskWeights.PBC_...)`` starts a new
  fit from the trained network (its last layer replaced for the new
  classes), for fine-tuning on a lab's own images.
"""

import enum
import functools
from dataclasses import dataclass, field
from pathlib import Path

from ..io._model_file import ModelFileWeights, TrainedWeights
from ..utils._files import read_tensors, sha256_file

__all__ = ["LeukoskWeights", "ShippedModel", "resolve_leukosk_weights"]

_FOLDER = Path(__file__).resolve().parent.parent / "pretrained"


@dataclass(frozen=True)
class ShippedModel:
    """The file of a shipped model and what is known about it.

    Attributes
    ----------
    filename : str
        Name of the file in ``leukosk/pretrained/``.
    sha256 : str
        Its SHA-256, checked before every use.
    meta : dict
        ``classes``, ``image_size``, ``preprocessing``, ``architecture``
        (the classifier parameters that shape the network), ``recipe``,
        ``data``, ``metrics``, ``machine``, ``license``.
    """

    filename: str
    sha256: str
    meta: dict = field(hash=False, compare=False)


_SAMPLE = "this model on the 160 bundled images (20 per class)"
_TECOM = "300 images of another lab (Zheng et al. 2018, Dataset 1)"


_PBC_LICENSE = ("trained on PBC images, CC BY 4.0 (Acevedo et al., Data in Brief 30, "
                "2020, doi:10.17632/snkd93bnjr.1); weights distributed with leukosk "
                "(BSD-3-Clause)")
_PBC_RAABIN_LICENSE = (
    "trained on PBC images, CC BY 4.0 (Acevedo et al., Data in Brief 30, 2020, "
    "doi:10.17632/snkd93bnjr.1), and on Raabin-WBC images (Kouzehkanan et al., "
    "Scientific Reports 12:1123, 2022, doi:10.1038/s41598-021-04426-x; a free-access "
    "dataset whose exact terms of use are set on the Raabin data site and could not be "
    "read offline when this model was made: check them before redistributing the "
    "model, and cite both datasets wherever it is used); weights distributed with "
    "leukosk (BSD-3-Clause)")


def _pbc_64px_meta(*, recipe, summary, file_bytes, metrics, fit_minutes, thresholds,
                   width=0.25, view="centre", n_train=10082,
                   excluded="the 160 images of the bundled sample (kept unseen) and 12 "
                            "duplicate copies",
                   calibration="the 160 bundled images", lab_shift=None,
                   machine="AMD EPYC, 2 cores (AVX2), no GPU; float32; torch 2.14.1",
                   dataset="PBC (Acevedo et al. 2020), development part",
                   license=_PBC_LICENSE):
    """``meta`` of a shipped VGG-19-BN at 64 px trained on PBC.

    What every such member shares (classes, input, network, data, machine,
    licence) is written here once; the arguments are what is its own.
    """
    preprocessing = {"crop": 0.6, "mean": (0.485, 0.456, 0.406),
                     "std": (0.229, 0.224, 0.225)}
    module = {"width": width, "pool_size": 1, "hidden_units": 256, "dropout": 0.0,
              "crop": 0.6}
    if view != "centre":
        preprocessing.update(view=view, cell_scale=1.8)
        module.update(view=view, cell_scale=1.8)
    meta = {
        "classes": ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte",
                    "monocyte", "neutrophil", "platelet"),
        "image_size": 64,
        "preprocessing": preprocessing,
        "architecture": {"batch_norm": True, "module": module},
        "recipe": recipe,
        "data": {"summary": summary,
                 "dataset": dataset,
                 "n_train": n_train, "excluded": excluded,
                 "file_bytes": file_bytes, "dtype": "float16"},
        "metrics": metrics,
        "machine": machine,
        "fit_minutes": fit_minutes,
        "license": license,
        "conformal": {
            "description": "LAC thresholds (MAPIE SplitConformalClassifier) fitted "
                           f"on {calibration}",
            "thresholds": thresholds},
    }
    if lab_shift is not None:
        meta["lab_shift"] = lab_shift
    return meta


class LeukoskWeights(TrainedWeights, enum.Enum):
    """Models trained by leukosk and shipped with it.

    Members are added as models are trained; ``LeukoskWeights.DEFAULT`` is
    the recommended one. See the model card in the documentation for each
    member's data, recipe, measured accuracy and limits.

    Examples
    --------
    >>> from leukosk import LeukoskWeights
    >>> [member.name for member in LeukoskWeights]  # doctest: +NORMALIZE_WHITESPACE
    ['PBC_VGG19BN_W25_64PX_V1', 'PBC_VGG19BN_W25_64PX_V2', 'PBC_VGG19BN_W375_64PX_CELL_V3',
     'PBC_RAABIN_VGG19BN_W375_64PX_CELL_V4']
    >>> LeukoskWeights.DEFAULT.meta["image_size"], LeukoskWeights.DEFAULT.transforms()["view"]
    (64, 'cell')
    """

    PBC_VGG19BN_W25_64PX_V1 = ShippedModel(
        filename="pbc_vgg19bn_w25_64px.safetensors",
        sha256="e27f5bd36e2bf5c8dcfc659dfe710fb51e0da0c6ceff0db75a5dc11141a021ba",
        meta=_pbc_64px_meta(
            recipe=("leukosk.protocols.leukosk2026(random_state=0): from random "
                    "weights, 22 epochs, AdamW (weight decay 0.05), batch 64, "
                    "one-cycle schedule peaking at lr 2e-3, random reflection and "
                    "rotation; benchmarks/train_shipped_model.py"),
            summary="10,082 images of the PBC development part", file_bytes=3090160,
            metrics={
                "split_80_20": {
                    "description": "the same recipe trained on 8,203 images and tested "
                                   "on 2,051 others of a duplicate-aware stratified 80/20 "
                                   "split of the development part",
                    "accuracy": 0.9449, "macro_f1": 0.9339,
                    "accuracy_tta": 0.9527, "macro_f1_tta": 0.9444,
                    "fit_minutes": 25.2},
                "bundled_sample": {
                    "description": _SAMPLE,
                    "accuracy": 0.94375,
                    "accuracy_tta": 0.9375,
                    "recall": {"basophil": 1.0, "eosinophil": 1.0, "erythroblast": 0.95,
                               "ig": 0.85, "lymphocyte": 0.95, "monocyte": 0.8,
                               "neutrophil": 1.0, "platelet": 1.0}},
                "tecom_out_of_the_box": {
                    "description": _TECOM + ", scored on the 5 classes they contain",
                    "accuracy": 0.143, "balanced_accuracy": 0.367},
            },
            fit_minutes=39.0,
            thresholds={0.9: 0.05075675774383115, 0.95: 0.6730037958414548}))
    PBC_VGG19BN_W25_64PX_V2 = ShippedModel(
        filename="pbc_vgg19bn_w25_64px_v2.safetensors",
        sha256="4b4dd05b898017a7a054efcceac8e720b8e8b3b12f2812938af1a3c5c36d24fe",
        meta=_pbc_64px_meta(
            recipe=("PBC_VGG19BN_W25_64PX_V1 fine-tuned with lab-shift augmentation: "
                    "leukosk.protocols.leukosk2026(weights='PBC_VGG19BN_W25_64PX_V1', "
                    "max_epochs=6, lr=1e-3, augment=leukosk.protocols."
                    "lab_shift_augmentations(random_state=0), random_state=0): "
                    "6 epochs, AdamW (weight decay 0.05), batch 64, one-cycle "
                    "schedule peaking at lr 1e-3; benchmarks/train_shipped_model.py "
                    "--init PBC_VGG19BN_W25_64PX_V1 --labshift --lr 1e-3 --epochs 6"),
            summary="10,082 images of the PBC development part (as V1)",
            file_bytes=2829536,
            metrics={
                "split_80_20": {
                    "description": "the same two steps (leukosk2026, then this "
                                   "fine-tune) trained on 8,203 images and tested on "
                                   "2,051 others of a duplicate-aware stratified 80/20 "
                                   "split of the development part",
                    "accuracy": 0.9352, "macro_f1": 0.9293,
                    "accuracy_tta": 0.9469, "macro_f1_tta": 0.9429,
                    "fine_tune_minutes": 13.9},
                "bundled_sample": {
                    "description": _SAMPLE,
                    "accuracy": 0.91875,
                    "accuracy_tta": 0.95,
                    "recall": {"basophil": 0.95, "eosinophil": 1.0, "erythroblast": 0.95,
                               "ig": 0.85, "lymphocyte": 0.9, "monocyte": 0.8,
                               "neutrophil": 0.9, "platelet": 1.0}},
                "tecom_out_of_the_box": {
                    "description": _TECOM + ", scored on the 5 classes they contain; "
                                            "crop 0.6 as shipped, and with "
                                            "module__crop=1.0",
                    "accuracy": 0.24, "balanced_accuracy": 0.5837,
                    "accuracy_crop_1": 0.6067,
                    "balanced_accuracy_crop_1": 0.7676},
                "tecom_10_shot": {
                    "description": "few_shot_classifier(module__crop=1.0) on 10 images "
                                   "per class of the same set, 5 draws, scored with "
                                   "TTA on the other 260 (mean, sd)",
                    "accuracy": 0.91, "accuracy_sd": 0.0155},
            },
            fit_minutes=10.8,
            thresholds={0.9: 0.410447398214447, 0.95: 0.6896179215267669}))
    PBC_VGG19BN_W375_64PX_CELL_V3 = ShippedModel(
        filename="pbc_vgg19bn_w375_64px_cell_v3.safetensors",
        sha256="e2a9e5ce81b51695da32847f36decc5817696aaeacbdba19a7ac21d212285208",
        meta=_pbc_64px_meta(
            recipe=("leukosk.protocols.leukosk2026_cell(random_state=0): from random "
                    "weights, the cell-centred view (module__view='cell'), 3/8 of "
                    "VGG-19's channels, lab-shift augmentation, 70 epochs, AdamW "
                    "(weight decay 0.05), batch 64, one-cycle schedule peaking at lr "
                    "2e-3; benchmarks/v3_recipe.py --view cell --width 0.375 --epochs 70 "
                    "--exclude-sample, then benchmarks/ship_v3.py"),
            summary="8,067 images of the PBC development part (the 80 % side of its "
                    "80/20 split)",
            file_bytes=6818496, width=0.375, view="cell", n_train=8067,
            excluded="the 2,049 images of the 20 % side of the duplicate-aware "
                     "stratified 80/20 split (random_state=0; test, calibration), the "
                     "160 images of the bundled sample and 12 duplicate copies",
            calibration="1,024 images of the 20 % side (the calibration half)",
            machine="AMD EPYC, 2 cores (AVX2 and AVX512-BF16), no GPU; float32; "
                    "torch 2.14.1",
            metrics={
                "split_80_20": {
                    "description": "this model on the 2,049 images of the 20 % side "
                                   "of the duplicate-aware stratified 80/20 split of "
                                   "the development part (never trained on)",
                    "accuracy": 0.9741, "macro_f1": 0.9717,
                    "accuracy_tta": 0.9795, "macro_f1_tta": 0.9779},
                "bundled_sample": {
                    "description": _SAMPLE,
                    "accuracy": 0.9625,
                    "accuracy_tta": 0.96875,
                    "recall": {"basophil": 1.0, "eosinophil": 0.95, "erythroblast": 0.9,
                               "ig": 0.95, "lymphocyte": 0.95, "monocyte": 0.95,
                               "neutrophil": 1.0, "platelet": 1.0}},
                "tecom_out_of_the_box": {
                    "description": _TECOM + ", scored on the 5 classes they contain; "
                                            "no setting of the lab's",
                    "accuracy": 0.6767, "balanced_accuracy": 0.5589,
                    "accuracy_tta": 0.6933, "balanced_accuracy_tta": 0.5802},
                "tecom_10_shot": {
                    "description": "few_shot_classifier() from this model on 10 images "
                                   "per class of the same set, 5 draws, scored with "
                                   "TTA on the other 260 (mean, sd)",
                    "accuracy": 0.9077, "accuracy_sd": 0.0269,
                    "seconds_per_draw": 14.0},
                "conformal_coverage": {
                    "description": "coverage of the stored sets on the evaluation "
                                   "half of the 20 % side (1,025 images)",
                    "0.9": 0.8878, "0.95": 0.9561},
            },
            fit_minutes=66.1,
            thresholds={0.9: 0.05003463856768908, 0.95: 0.27855775760084733},
            lab_shift={
                "threshold": 0.04922,
                "unsure_threshold": 0.08471,
                "description": "twice the 99th percentile of the lab-shift score (first "
                               "3 batch-norm layers) of 200 random folders of 100 "
                               "images of the calibration half; flagged: 0 of 200 such "
                               "folders of the evaluation half and of the bundled "
                               "sample, 0 of 50 patient-like differentials, a folder of "
                               "platelets only, and 200 of 200 folders of 100 tecom "
                               "images (median score 0.226). unsure_threshold (issue "
                               "28): twice the 99th percentile of the unsureness (mean 1 "
                               "- top probability) of the same folders; with both "
                               "channels, 0 of 200 folders of the evaluation half and of "
                               "the bundled sample flagged, 200 of 200 of tecom and of "
                               "the Raabin-WBC subset (median unsureness 0.129 and 0.240 "
                               "against 0.028 on PBC; benchmarks/calibrate_unsure.py, "
                               "record docs/results/v3_unsure.json)"}))
    PBC_RAABIN_VGG19BN_W375_64PX_CELL_V4 = ShippedModel(
        filename="pbc_raabin_vgg19bn_w375_64px_cell_v4.safetensors",
        sha256="f5e5e496293cc8b5feab670988bf050a238493f2defac6f774e45a111899f3aa",
        meta=_pbc_64px_meta(
            recipe=("two stages from V3's weights, one resumable background run "
                    "(benchmarks/train_v4.sh): leukosk.protocols.leukosk2026_multi("
                    "random_state=0), 22 epochs, one-cycle peaking at lr 1e-3, PBC and "
                    "Raabin-WBC weighing the same, strong colour and stain jitter "
                    "(54 min); then 8 epochs, one-cycle peaking at 2e-4, the sources "
                    "in their natural proportions, V3's lab-shift augmentation, "
                    "weights averaged (EMA 0.998; 22 min); then benchmarks/ship_v4.py "
                    "(measures, records each training lab's and class's statistics, "
                    "calibrates, writes the file)"),
            summary="8,067 images of the PBC development part and 2,298 of a "
                    "Raabin-WBC subset (the 80 % sides of their 80/20 splits)",
            dataset="PBC (Acevedo et al. 2020), development part; Raabin-WBC "
                    "(Kouzehkanan et al. 2022), a subset of its training split",
            file_bytes=6094048, width=0.375, view="cell", n_train=8067 + 2298,
            excluded="the 20 % sides of the duplicate-aware stratified 80/20 splits "
                     "(random_state=0) of both sources (2,049 PBC and 575 Raabin "
                     "images; test, calibration), the 160 images of the bundled "
                     "sample and 12 duplicate copies",
            calibration="1,024 images of PBC's 20 % side (the calibration half)",
            machine="AMD EPYC, 2 cores (AVX2 and AVX512-BF16), no GPU; float32; "
                    "torch 2.14.1",
            license=_PBC_RAABIN_LICENSE,
            metrics={
                "split_80_20": {
                    "description": "this model on the 2,049 images of the 20 % side "
                                   "of the duplicate-aware stratified 80/20 split of "
                                   "the PBC development part (never trained on)",
                    "accuracy": 0.9761, "macro_f1": 0.9736,
                    "accuracy_tta": 0.979, "macro_f1_tta": 0.9768},
                "raabin_split_80_20": {
                    "description": "the plain 8-class answer on the 575 images of the "
                                   "20 % side of the same split of the Raabin-WBC "
                                   "subset (never trained on)",
                    "accuracy": 0.9391, "accuracy_tta": 0.9478,
                    "called_a_class_raabin_lacks": 0.0},
                "bundled_sample": {
                    "description": _SAMPLE,
                    "accuracy": 0.9375,
                    "accuracy_tta": 0.96875,
                    "recall": {"basophil": 0.95, "eosinophil": 0.95, "erythroblast": 0.9,
                               "ig": 0.85, "lymphocyte": 1.0, "monocyte": 0.95,
                               "neutrophil": 0.95, "platelet": 0.95}},
                "tecom_out_of_the_box": {
                    "description": _TECOM + ", scored on the 5 classes they contain "
                                            "(299 after a duplicate); no setting of "
                                            "the lab's",
                    "accuracy": 0.7258, "balanced_accuracy": 0.5675,
                    "accuracy_8": 0.6054, "called_ig": 0.1538,
                    "accuracy_tta": 0.7492, "balanced_accuracy_tta": 0.6105},
                "tecom_10_shot": {
                    "description": "few_shot_classifier() from this model on 10 images "
                                   "per class of the same set, 5 draws, scored with "
                                   "TTA on the others (mean, sd)",
                    "accuracy": 0.9143, "accuracy_sd": 0.0338,
                    "seconds_per_draw": 19.6},
                "tecom_review": {
                    "description": "leukosk adapt on 10 reviewed cells per class "
                                   "(held-back check), 3 random reviews, the plain "
                                   "answer on the other cells (mean, worst, before; "
                                   "leukosk.labs.evaluate_labs)",
                    "accuracy": 0.9331, "accuracy_worst": 0.9112,
                    "accuracy_before": 0.6152},
                "conformal_coverage": {
                    "description": "coverage of the stored sets on the evaluation "
                                   "half of PBC's 20 % side (1,025 images)",
                    "0.9": 0.8937, "0.95": 0.9522},
            },
            fit_minutes=76.4,
            thresholds={0.9: 0.08888875578477395, 0.95: 0.3064504622209522},
            lab_shift={
                "threshold": 0.00423,
                "unsure_threshold": 0.14633,
                "description": "scored against the nearest of each training lab's and "
                               "class's statistics (stored in the file); twice the "
                               "99th percentile of the score (first 3 batch-norm "
                               "layers) and of the unsureness of 200 random folders "
                               "of 100 images of each lab's calibration half; "
                               "flagged: 0 of 200 such folders of PBC's evaluation "
                               "half, 1 of 200 of Raabin's, none of the bundled "
                               "sample's, of 10 patient-like differentials, nor of "
                               "100-cell folders of one class (8 of PBC's, 4 of "
                               "Raabin's), and 200 of 200 folders of 100 tecom "
                               "images (median score 0.236); benchmarks/ship_v4.py, "
                               "docs/results/v4_record.json"}))
    DEFAULT = PBC_RAABIN_VGG19BN_W375_64PX_CELL_V4

    @property
    def meta(self):
        """What is known about the model (a dict; see :class:`ShippedModel`)."""
        return self.value.meta

    @property
    def sha256(self):
        """The SHA-256 of the model file."""
        return self.value.sha256

    @property
    def path(self):
        """The model file inside the installed package."""
        return _FOLDER / self.value.filename

    def verify(self):
        """Check that the file is there and intact; return its path.

        Raises
        ------
        FileNotFoundError, ValueError
            The file is missing (a broken installation) or altered.
        """
        path = self.path
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped model file {path} is missing: the leukosk "
                "installation is incomplete. Reinstall leukosk (pip install "
                "--force-reinstall leukosk).")
        digest = sha256_file(path)
        if digest != self.sha256:
            raise ValueError(
                f"the shipped model file {path} does not match its SHA-256 "
                f"({digest[:12]}... instead of {self.sha256[:12]}...): it was "
                "altered or damaged. Reinstall leukosk.")
        return path

    def get_state_dict(self):
        """The network's tensors (float32, on the CPU), after :meth:`verify`."""
        state = read_tensors(self.verify(), what="shipped model file",
                             fix="Reinstall leukosk.")
        return self._float32(state)

    def transforms(self):
        """The preprocessing the model expects, as a dict: ``image_size``,
        ``crop`` (central fraction kept, or the fallback of the cell view),
        ``mean`` and ``std``, and ``view`` and ``cell_scale`` for models that
        see the cell-centred view."""
        return dict(self.meta["preprocessing"], image_size=self.meta["image_size"])

    def __str__(self):
        return self.name


def resolve_leukosk_weights(weights):
    """The trained leukosk weights ``weights`` names, or None: a
    :class:`LeukoskWeights` member (or its name), or a leukosk model file."""
    import os

    from ..io._model_file import is_model_file

    if isinstance(weights, TrainedWeights):
        return weights
    if isinstance(weights, str) and weights in LeukoskWeights.__members__:
        return LeukoskWeights[weights]
    if isinstance(weights, (str, os.PathLike)) and str(weights).endswith(".safetensors") \
            and Path(weights).is_file() and is_model_file(weights):
        stat = Path(weights).stat()
        return _model_file(str(weights), stat.st_mtime_ns, stat.st_size)
    return None


@functools.lru_cache(maxsize=4)
def _model_file(path, mtime_ns, size):
    """One :class:`ModelFileWeights` per file version (reading is not free).

    It keeps the file's metadata only, never its tensors: they are read when
    the network is built and belong to it alone."""
    return ModelFileWeights(path)


