"""What can go wrong while training, said clearly: divergence and interruption."""

import numpy as np
import torch

__all__ = ["NonFiniteLossError", "FitInterruptedWarning", "check_finite_loss",
           "interruption_message", "check_sample_weight", "weighted_loss"]


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite: training stopped.

    Raised by ``fit`` at the batch where it happened (the message names the
    epoch, the batch and the learning rate). Usually the learning rate is too
    high for the network; the model is left as it was after the previous
    batch and should not be used.

    Examples
    --------
    >>> from leukosk import NonFiniteLossError
    >>> issubclass(NonFiniteLossError, ValueError)
    True
    """


class FitInterruptedWarning(UserWarning):
    """``fit`` was interrupted (Ctrl-C) and returned a partly trained model.

    As in skorch, an interrupted fit keeps the network as it was after the
    last completed batch, and returns normally so that an interactive session
    keeps it; this warning, and the fitted attribute ``interrupted_``, say so.
    With ``checkpoint_dir`` the last completed epoch is on disk.

    Examples
    --------
    >>> import warnings
    >>> from leukosk import FitInterruptedWarning
    >>> warnings.simplefilter("error", FitInterruptedWarning)  # make it fatal
    >>> warnings.resetwarnings()
    """


def check_finite_loss(loss, epoch, batch, lr):
    """Raise :class:`NonFiniteLossError` unless ``loss`` is finite."""
    loss = loss.detach()
    if bool(torch.isfinite(loss)):
        return
    raise NonFiniteLossError(
        f"the training loss became {float(loss)} at epoch {epoch}, batch {batch}, "
        f"with learning rate {lr:g}: training diverged. Use a smaller learning "
        f"rate (e.g. lr={lr / 10:g}), or warm it up with a schedule; the model "
        "was not saved.")


def interruption_message(net):
    """One line on what an interrupted fit kept."""
    done = sum(1 for row in net.history if "train_loss" in row)
    if net.checkpoint_dir is not None and done:
        kept = f"the checkpoint in {net.checkpoint_dir} holds epoch {done}"
    else:
        kept = "no checkpoint was written"
    return (f"training was interrupted after {done} complete epoch(s) of "
            f"{net.max_epochs}; {kept}.")


def check_sample_weight(sample_weight, n_samples):
    """``sample_weight`` as float32, one finite non-negative weight per image."""
    if sample_weight is None:
        return None
    sample_weight = np.asarray(sample_weight, dtype=np.float32)
    if (sample_weight.shape != (n_samples,) or not np.all(np.isfinite(sample_weight))
            or sample_weight.min() < 0):
        raise ValueError("sample_weight must hold one finite, non-negative weight "
                         f"per image ({n_samples}).")
    return sample_weight


def _masked_cross_entropy(criterion, y_pred, targets, mask):
    """Per-image cross-entropy over each image's allowed classes (``mask``):
    the other classes' logits take no part, in the softmax nor in label
    smoothing, which spreads over the allowed classes only."""
    logp = torch.log_softmax(y_pred.float().masked_fill(~mask, float("-inf")), dim=1)
    nll = -logp.gather(1, targets[:, None])[:, 0]
    if criterion.weight is not None:
        nll = nll * criterion.weight[targets]
    smoothing = criterion.label_smoothing
    if not smoothing:
        return nll
    spread = -logp.masked_fill(~mask, 0.0)
    if criterion.weight is not None:
        spread = spread * criterion.weight
    return (1 - smoothing) * nll + smoothing * spread.sum(1) / mask.sum(1)


def weighted_loss(criterion, y_pred, targets, weights, mask=None):
    """Cross-entropy averaged with per-image ``weights`` (times class weights,
    normalised as torch normalises class weights); with ``mask`` (n, classes),
    each image's over the classes it may be."""
    if not isinstance(criterion, torch.nn.CrossEntropyLoss):
        raise TypeError("sample_weight and source need "
                        "criterion=torch.nn.CrossEntropyLoss.")
    if mask is not None:
        losses = _masked_cross_entropy(criterion, y_pred, targets, mask)
    else:
        losses = torch.nn.functional.cross_entropy(
            y_pred, targets, weight=criterion.weight, reduction="none",
            label_smoothing=criterion.label_smoothing)
    norm = weights if criterion.weight is None else weights * criterion.weight[targets]
    return (losses * weights).sum() / norm.sum().clamp_min(1e-12)
