"""Does a folder of images look like the lab a model was trained in?

A model trained in one lab (one stain, camera and magnification) is measured
there; on another lab's images its accuracy is unknown, and it can be wrong
with high confidence. Batch norm records, in every layer, the mean and
variance of each channel over the training images. :class:`LabShiftMonitor`
compares them with the same statistics over a folder's images, gathered while
the model predicts (no second pass): the mean over layers and channels of the
KL divergence of the training statistics' Gaussian from the folder's.

Only the first batch-norm layers count (``LAYERS``): they see colour, stain
and texture, which change from lab to lab, while deeper layers see cell
types, so that there a folder of one hospital's neutrophils would look as
foreign as another lab's images (measured on PBC: a folder of one class
scores up to 20 times a mixed one in the last layers, hardly more in the
first three).

The score's scale is the model's own, so each model carries a threshold,
calibrated on folders of held-out images of its training lab
(:func:`calibrate_lab_shift`): the shipped models store theirs in their
``meta["lab_shift"]``.

The statistics see colour and texture only. Images of the same analyser at
another hospital (the same optics and camera, a similar stain) can keep them
in the training range while the cells still look unlike the training cells to
the rest of the network: such a folder passed unwarned (issue 28's lab B, a
score of 0.034 against V3's threshold of 0.049, where V3 was right on 58 % of
the cells). So the monitor also measures the model's own doubt, the
*unsureness* of a folder: the mean over its images of one minus the largest
class probability. A folder is flagged when either the score or the
unsureness exceeds its threshold (``lab_shift_unsure_threshold_``, calibrated
the same way), so that a lab missed by the statistics is caught by the
model's doubt, and the other way round.

A model trained on several labs (V4: PBC and Raabin-WBC) records in batch
norm the mix of their statistics, which no single lab matches: thresholds wide
enough for each training lab's folders against the mix let a third lab pass
(issue 28: 3.5 % of tecom's folders flagged). Such a model carries each
training lab's own statistics (``lab_shift_references_``, from
:func:`fit_lab_references`), and a folder's score is its divergence from the
*nearest* training lab: a folder of one of them scores as it would against a
model of that lab alone, and a folder like none of them scores high.
"""

import warnings
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import Bunch, check_random_state
from torch import nn

__all__ = ["LabShiftWarning", "LabShiftMonitor", "lab_shift_score",
           "calibrate_lab_shift", "check_lab_shift", "watch_lab_shift",
           "lab_shift_reasons", "fit_lab_references", "MIN_IMAGES",
           "LAYERS"]

#: Fewest images for a verdict: fewer give too noisy a score.
MIN_IMAGES = 20

#: How many of the first batch-norm layers the score uses.
LAYERS = 3


class LabShiftWarning(UserWarning):
    """The images do not look like those the model was trained on."""


def _last_linear(module):
    """The layer whose outputs are the class scores (the network's last
    fully connected layer)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _norms(module, layers=None):
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)
             and m.running_mean is not None]
    return norms[:layers]


class LabShiftMonitor:
    """Gather batch-norm input statistics while a classifier predicts.

    Use as a context manager around ``predict``/``predict_proba`` of a fitted
    :class:`~leukosk.VGG19LeukocyteClassifier` with batch norm; afterwards
    :attr:`score` compares the images seen with the training statistics.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
    per_image : bool, default=False
        Keep each image's statistics, so that :meth:`subset_score` can score
        any subset without running the model again.
    layers : int, default=LAYERS
        How many of the first batch-norm layers count.

    Attributes
    ----------
    score : float
        Mean over the layers and their channels of the KL divergence of the
        training statistics' Gaussian from the images' (0 where equal); for a
        model with ``lab_shift_references_``, the smallest such divergence
        over its training labs.
    nearest : str
        The training lab the images are nearest to (``"training"`` for a
        model without references).
    unsure : float
        Mean over the images (views, under TTA) of one minus the largest
        class probability.
    n_images : int

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.domain import LabShiftMonitor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    >>> clf = VGG19LeukocyteClassifier(weights=None, batch_norm=True, image_size=32,
    ...     max_epochs=1, verbose=0, module__width=0.25, module__hidden_units=16,
    ...     device="cpu").fit(X, [0, 1] * 4)
    >>> with LabShiftMonitor(clf) as same:
    ...     _ = clf.predict(X)
    >>> with LabShiftMonitor(clf) as other:
    ...     _ = clf.predict((X // 4).astype(np.uint8))
    >>> bool(other.score > same.score), same.n_images
    (True, 8)
    """

    def __init__(self, clf, *, per_image=False, layers=LAYERS):
        clf.check_is_fitted()
        self.norms = _norms(clf._plain_module(), layers)
        if not self.norms:
            raise ValueError("the network has no batch norm (batch_norm=False): a lab "
                             "shift cannot be scored from its statistics.")
        self.references = _references(clf, self.norms)
        self.per_image = per_image
        self._sums = [[] for _ in self.norms]  # per layer: (n or 1, 2, channels)
        self._counts = []
        self._doubt = []  # per batch: each image's 1 - top probability, or their sum
        self._head = _last_linear(clf._plain_module())
        self._handles = []

    def _record_doubt(self, layer, inputs, output):
        doubt = 1 - torch.softmax(output.detach().float(), dim=1).amax(dim=1).double().cpu()
        self._doubt.append(doubt if self.per_image else doubt.sum()[None])

    def _hook(self, index):
        def record(norm, inputs, output):
            x = inputs[0].detach().float()
            sums = torch.stack([x.mean(dim=(2, 3)), (x * x).mean(dim=(2, 3))], dim=1)
            sums = sums.double().cpu()
            if not self.per_image:  # one running total
                sums = sum(self._sums[index], sums.sum(0, keepdim=True))
                self._sums[index].clear()
            self._sums[index].append(sums)
            if index == 0:
                self._counts.append(len(x))
        return record

    def __enter__(self):
        self._handles = [norm.register_forward_hook(self._hook(i))
                         for i, norm in enumerate(self.norms)]
        if self._head is not None:
            self._handles.append(self._head.register_forward_hook(self._record_doubt))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return False

    @property
    def n_images(self):
        """Images seen (views, under test-time augmentation)."""
        return int(sum(self._counts))

    def _moments(self, index=None):
        """Per layer, the mean and variance of each channel over ``index``."""
        moments = []
        for layer in range(len(self.norms)):
            sums = torch.cat(self._sums[layer])
            if index is not None:
                sums = sums[torch.as_tensor(np.asarray(index))]
            n = self.n_images if index is None or not self.per_image else len(index)
            mean, square = sums.sum(0) / n
            moments.append((mean, (square - mean ** 2).clamp_min(1e-8)))
        return moments

    def subset_scores(self, index=None):
        """Each training lab's divergence from the images ``index``
        (``per_image=True``), a dict; ``{"training": ...}`` without references."""
        if self.n_images == 0:
            return {name: float("nan") for name in self.references}
        moments = self._moments(index)
        return {name: float(np.mean([float(_kl(mean, var, *ref).mean()) for (mean, var), ref
                                     in zip(moments, reference)]))
                for name, reference in self.references.items()}

    def subset_score(self, index=None):
        """The score of the images ``index`` only (``per_image=True``)."""
        return min(self.subset_scores(index).values())

    @property
    def nearest(self):
        """The training lab whose statistics the images are nearest to."""
        scores = self.subset_scores()
        return min(scores, key=scores.get)

    @property
    def score(self):
        """The divergence of all images seen from the training statistics
        (NaN if none were seen)."""
        return self.subset_score()

    def subset_unsure(self, index=None):
        """The unsureness of the images ``index`` only (``per_image=True``)."""
        if not self._doubt:
            return float("nan")
        doubt = torch.cat(self._doubt)
        if index is not None and self.per_image:
            return float(doubt[torch.as_tensor(np.asarray(index))].mean())
        return float(doubt.sum() / self.n_images)

    @property
    def unsure(self):
        """Mean over the images seen of one minus the top class probability
        (NaN if none were seen)."""
        return self.subset_unsure()


def _kl(mean, var, ref_mean, ref_var):
    """Per channel, the KL divergence of N(ref) from N(mean, var)."""
    return 0.5 * ((var + (mean - ref_mean) ** 2) / ref_var - 1 + torch.log(ref_var / var))


def _references(clf, norms):
    """Name -> per layer (mean, variance): the model's training labs' own
    statistics where it carries them, else batch norm's (``"training"``)."""
    stored = getattr(clf, "lab_shift_references_", None)
    if not stored:
        return {"training": [(n.running_mean.double().cpu(),
                              n.running_var.double().cpu().clamp_min(1e-8)) for n in norms]}
    references = {}
    for name, layers in stored.items():
        if len(layers) < len(norms) or any(len(mean) != len(n.running_mean) for (mean, _), n
                                           in zip(layers, norms)):
            raise ValueError(f"lab_shift_references_[{name!r}] does not match the "
                             "network's first batch-norm layers; compute it again "
                             "(leukosk.domain.fit_lab_references).")
        references[name] = [(torch.as_tensor(np.asarray(mean), dtype=torch.float64),
                             torch.as_tensor(np.asarray(var), dtype=torch.float64
                                             ).clamp_min(1e-8))
                            for mean, var in layers[:len(norms)]]
    return references


def fit_lab_references(clf, X, groups=None, *, y=None, layers=LAYERS):
    """Record each training lab's own statistics, for the lab-shift score.

    Runs ``clf`` once over ``X`` (images of its training labs, e.g. its
    training images; without test-time augmentation) and stores, for each lab
    named in ``groups``, the mean and variance of each channel entering the
    first ``layers`` batch-norm layers, as ``clf.lab_shift_references_`` (a
    dict, saved with the model). From then on a folder's lab-shift score is
    its divergence from the nearest of those labs, so that a model trained on
    several labs flags a folder like none of them; calibrate the thresholds
    afterwards (:func:`calibrate_lab_shift`).

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier (with batch norm)
    X : images (n, H, W, 3) or paths
    groups : array-like of shape (n,), default=None
        Each image's training lab; None: one lab.
    y : array-like of shape (n,), default=None
        Each image's class: then each lab's statistics over each of its
        classes are recorded too (``"lab/class"``), so that a folder of one
        cell type (a lymphocytosis, a folder of platelets) is near its class's
        statistics instead of far from the lab's mix.
    layers : int, default=LAYERS

    Returns
    -------
    clf
        With ``lab_shift_references_``: name -> per layer ``(mean,
        variance)`` lists of floats.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.domain import LabShiftMonitor, fit_lab_references
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    >>> X[8:] //= 3  # a second, darker lab
    >>> clf = VGG19LeukocyteClassifier(weights=None, batch_norm=True, image_size=32,
    ...     max_epochs=1, verbose=0, module__width=0.25, module__hidden_units=16,
    ...     device="cpu").fit(X, [0, 1] * 8)
    >>> clf = fit_lab_references(clf, X, ["bright"] * 8 + ["dark"] * 8)
    >>> sorted(clf.lab_shift_references_)
    ['bright', 'dark']
    >>> with LabShiftMonitor(clf) as monitor:
    ...     _ = clf.predict(X[8:])
    >>> monitor.nearest
    'dark'
    """
    groups = np.zeros(len(X), int) if groups is None else np.asarray(groups)
    if len(groups) != len(X):
        raise ValueError(f"groups names {len(groups)} images, X holds {len(X)}.")
    clf.lab_shift_references_ = None  # the monitor's own norms, not older references
    monitor = _monitored(clf, X, per_image=True, layers=layers)
    names = {str(lab): groups == lab for lab in np.unique(groups)}
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"y names {len(y)} images, X holds {len(X)}.")
        names.update({f"{lab}/{label}": (groups == lab) & (y == label)
                      for lab in np.unique(groups) for label in np.unique(y[groups == lab])})
    references = {}
    for name, members in names.items():
        moments = monitor._moments(np.flatnonzero(members))
        references[name] = [(mean.tolist(), var.tolist()) for mean, var in moments]
    clf.lab_shift_references_ = references
    return clf


def lab_shift_score(clf, X):
    """How far the images ``X`` are from the model's training statistics.

    Runs the model over ``X`` once (see :class:`LabShiftMonitor`). Compare the
    score with the model's threshold (:func:`check_lab_shift`).

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier (with batch norm)
    X : images (n, H, W, 3) or paths

    Returns
    -------
    float

    Examples
    --------
    >>> from leukosk import load_pretrained
    >>> from leukosk.datasets import load_pbc
    >>> from leukosk.datasets import sample_folder
    >>> from leukosk.domain import lab_shift_score
    >>> sample = load_pbc(sample_folder(), cache=False, verbose=False)
    >>> clf = load_pretrained(device="cpu")
    >>> lab_shift_score(clf, sample.images[::4]) < clf.lab_shift_threshold_
    True
    """
    return _monitored(clf, X).score


def _monitored(clf, X, *, per_image=False, layers=LAYERS):
    """A :class:`LabShiftMonitor` that saw ``clf`` predict ``X`` once (each
    image once: without test-time augmentation where ``per_image``)."""
    tta = clf.tta
    if per_image:
        clf.set_params(tta=False)  # one view per image, so that rows are images
    try:
        with LabShiftMonitor(clf, per_image=per_image, layers=layers) as monitor:
            clf.predict_proba(X)
    finally:
        clf.set_params(tta=tta)
    return monitor


def calibrate_lab_shift(clf, X, *, groups=None, n_images=100, n_folders=200,
                        quantile=0.99, margin=2.0, random_state=0):
    """Thresholds from random folders of held-out images of the training labs.

    Each image is run once; folder scores and unsureness come from random
    subsets of ``n_images`` images (drawn within one group, where ``groups``
    names each image's lab). Each threshold is ``margin`` times the
    ``quantile`` of its folders' values (the largest over the groups), so that
    folders of every training lab stay below it (about ``1 - quantile`` of
    them above before the margin).

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier (with batch norm)
    X : held-out images of the training lab(s) (never trained on)
    groups : array-like of shape (n,), default=None
        Each image's training lab (source), for a model trained on several:
        a folder holds one lab's images.
    n_images, n_folders : int, default=100, 200
        ``n_folders`` per group.
    quantile : float, default=0.99
    margin : float, default=2.0
    random_state : int, RandomState or None, default=0

    Returns
    -------
    Bunch
        ``threshold``, ``scores`` (the folders'), ``unsure_threshold``,
        ``unsure`` (the folders'), ``n_images``, ``quantile``, ``margin``.

    Examples
    --------
    >>> from leukosk import load_pretrained
    >>> from leukosk.datasets import load_pbc
    >>> from leukosk.datasets import sample_folder
    >>> from leukosk.domain import calibrate_lab_shift
    >>> sample = load_pbc(sample_folder(), cache=False, verbose=False)
    >>> result = calibrate_lab_shift(load_pretrained(device="cpu"), sample.images,
    ...                              n_images=40, n_folders=20)
    >>> result.scores.shape, bool(result.threshold > result.scores.max())
    ((20,), True)
    """
    groups = np.zeros(len(X), int) if groups is None else np.asarray(groups)
    if len(groups) != len(X):
        raise ValueError(f"groups names {len(groups)} images, X holds {len(X)}.")
    labs, sizes = np.unique(groups, return_counts=True)
    if n_images > sizes.min():
        raise ValueError(f"n_images={n_images} but only {sizes.min()} held-out images"
                         f"{'' if len(labs) == 1 else f' of {labs[sizes.argmin()]}'}.")
    monitor = _monitored(clf, X, per_image=True)
    rng = check_random_state(random_state)
    folders = [[rng.choice(np.flatnonzero(groups == lab), n_images, replace=False)
                for _ in range(n_folders)] for lab in labs]
    scores = np.array([[monitor.subset_score(f) for f in lab] for lab in folders])
    unsure = np.array([[monitor.subset_unsure(f) for f in lab] for lab in folders])

    def limit(values):
        return margin * float(np.quantile(values, quantile, axis=1).max())
    return Bunch(threshold=limit(scores), scores=scores.ravel(),
                 unsure_threshold=limit(unsure), unsure=unsure.ravel(),
                 n_images=n_images, quantile=quantile, margin=margin)


def check_lab_shift(clf, X=None, *, score=None, n_images=None, threshold=None,
                    unsure=None, unsure_threshold=None, where="these images"):
    """Warn (:class:`LabShiftWarning`) when images do not look like the training lab.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
    X : images or paths, optional
        Scored with :func:`lab_shift_score` unless ``score`` is given.
    score : float, optional
        A score already gathered (e.g. by a :class:`LabShiftMonitor` around
        the predictions).
    n_images : int, optional
        How many images ``score`` was gathered on (default ``len(X)``).
    threshold : float, optional
        Default: the model's ``lab_shift_threshold_`` (shipped models carry
        one); without either, nothing is checked.
    unsure : float, optional
        The unsureness already gathered (:attr:`LabShiftMonitor.unsure`).
    unsure_threshold : float, optional
        Default: the model's ``lab_shift_unsure_threshold_`` where it has
        one; without either, the unsureness is not checked.
    where : str
        Names the images in the warning (a folder, say).

    Returns
    -------
    Bunch
        ``score``, ``threshold``, ``unsure``, ``unsure_threshold``,
        ``shifted`` (True where the score or the unsureness is above its
        threshold, False, or None where no verdict is possible: no
        threshold, or fewer than ``MIN_IMAGES``).

    Examples
    --------
    >>> import warnings
    >>> from leukosk import load_pretrained
    >>> from leukosk.datasets import load_pbc
    >>> from leukosk.datasets import sample_folder
    >>> from leukosk.domain import check_lab_shift
    >>> sample = load_pbc(sample_folder(), cache=False, verbose=False)
    >>> check_lab_shift(load_pretrained(device="cpu"), sample.images[::4]).shifted
    False
    """
    threshold = threshold if threshold is not None else getattr(
        clf, "lab_shift_threshold_", None)
    unsure_threshold = unsure_threshold if unsure_threshold is not None else getattr(
        clf, "lab_shift_unsure_threshold_", None)
    if n_images is None:
        n_images = None if X is None else len(X)
    if score is None and X is not None and threshold is not None:
        monitor = _monitored(clf, X)
        score, unsure = monitor.score, monitor.unsure
    shifted = None
    if threshold is not None and score is not None and (n_images or 0) >= MIN_IMAGES:
        reasons = lab_shift_reasons(score, threshold, unsure, unsure_threshold)
        shifted = bool(reasons)
    if shifted:
        warnings.warn(
            f"{where} do not look like the images this model was trained on "
            f"({' and '.join(reasons)}). Its accuracy here is unmeasured and its "
            "probabilities and referrals may be confidently wrong. Check a few cells "
            "by eye, and adapt the model with about ten labelled cells per class "
            "(leukosk adapt, or leukosk.protocols.few_shot_classifier; see 'Using "
            "leukosk on your lab's images').", LabShiftWarning, stacklevel=2)
    return Bunch(score=score, threshold=threshold, unsure=unsure,
                 unsure_threshold=unsure_threshold, shifted=shifted)


def lab_shift_reasons(score, threshold, unsure, unsure_threshold):
    """Why a folder is flagged, in words (an empty list where it is not).

    Examples
    --------
    >>> from leukosk.domain import lab_shift_reasons
    >>> lab_shift_reasons(0.01, 0.05, 0.3, 0.1)
    ['the model is unsure: mean 1 - top probability 0.3 > 0.1, more than on any folder of its training labs']
    """
    reasons = []
    if score > threshold:
        reasons.append(f"lab-shift score {score:.3g} > {threshold:.3g}: another stain, "
                       "camera or magnification")
    if unsure_threshold is not None and unsure is not None and unsure > unsure_threshold:
        reasons.append(f"the model is unsure: mean 1 - top probability {unsure:.3g} > "
                       f"{unsure_threshold:.3g}, more than on any folder of its "
                       "training labs")
    return reasons


@contextmanager
def watch_lab_shift(clf, n_images, *, where="these images"):
    """Check for a lab shift while predicting, in the same pass.

    Wrap the calls that predict ``n_images`` images; on leaving, the scores
    gathered are checked (:func:`check_lab_shift`), which warns once. Models
    without batch norm or without a threshold are not checked.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
    n_images : int
        How many images the wrapped calls predict.
    where : str
        Names the images in the warning.

    Yields
    ------
    Bunch
        Filled on leaving: ``score``, ``threshold``, ``shifted``.

    Examples
    --------
    >>> import warnings
    >>> from leukosk import load_pretrained
    >>> from leukosk.datasets import load_pbc
    >>> from leukosk.datasets import sample_folder
    >>> from leukosk.domain import watch_lab_shift
    >>> clf = load_pretrained(device="cpu")
    >>> sample = load_pbc(sample_folder(), cache=False, verbose=False)
    >>> with watch_lab_shift(clf, 40, where="the sample") as verdict:
    ...     labels = clf.predict(sample.images[::4])
    >>> verdict.shifted
    False
    """
    verdict = Bunch(score=None, threshold=getattr(clf, "lab_shift_threshold_", None),
                    unsure=None, unsure_threshold=None, shifted=None)
    if verdict.threshold is None or not _norms(clf._plain_module()):
        yield verdict
        return
    with LabShiftMonitor(clf) as monitor:
        yield verdict
    verdict.update(check_lab_shift(clf, score=monitor.score, unsure=monitor.unsure,
                                   n_images=n_images, where=where))
