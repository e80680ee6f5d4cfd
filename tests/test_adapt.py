"""AdaBN: batch-norm statistics re-estimated on a new lab's images (issue 16)."""

import numpy as np
import pytest
import torch

from leukosk import VGG19LeukocyteClassifier
from leukosk.adapt import adapt_batch_norm


@pytest.fixture(scope="module")
def fitted():
    from conftest import FAST, make_images

    X, y = make_images()
    return VGG19LeukocyteClassifier(**{**FAST, "batch_norm": True}).fit(X, y), X, y


def _first_norm(clf):
    return next(m for m in clf._plain_module().modules()
                if isinstance(m, torch.nn.BatchNorm2d))


def test_statistics_become_those_of_the_new_images_and_weights_stay(fitted):
    from sklearn.base import clone

    clf, X, y = fitted
    clf = clone(clf).fit(X, y)
    shifted = np.clip(X.astype(int) + 60, 0, 255).astype(np.uint8)
    weights = {k: v.clone() for k, v in clf._plain_module().state_dict().items()
               if "running" not in k and "num_batches" not in k}
    inputs = []
    norm = _first_norm(clf)
    handle = norm.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach()))
    clf.predict(shifted)  # eval mode: the hook sees what the layer gets
    handle.remove()
    expected = torch.cat(inputs).mean(dim=(0, 2, 3))
    adapt_batch_norm(clf, shifted, batch_size=len(shifted))
    torch.testing.assert_close(norm.running_mean, expected, rtol=1e-4, atol=1e-5)
    assert norm.momentum == 0.1 and not clf._plain_module().training
    after = clf._plain_module().state_dict()
    for key, value in weights.items():
        assert torch.equal(after[key], value), key


def test_paths_of_mixed_sizes_and_errors(fitted, tmp_path):
    from PIL import Image

    clf, X, _ = fitted
    paths = []
    for i, image in enumerate(X[:4]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image if i % 2 else np.pad(image, ((0, 4), (0, 4), (0, 0)))).save(
            paths[-1])
    assert adapt_batch_norm(clf, paths, batch_size=3).predict(paths).shape == (4,)
    from conftest import FAST

    plain = VGG19LeukocyteClassifier(**{**FAST, "batch_norm": False}).fit(X, fitted[2])
    with pytest.raises(ValueError, match="no batch norm"):
        adapt_batch_norm(plain, X)
    with pytest.raises(Exception, match="not fitted|fit"):
        adapt_batch_norm(VGG19LeukocyteClassifier(), X)


def test_an_interrupted_adaptation_keeps_the_old_statistics(fitted, monkeypatch):
    clf, X, _ = fitted
    before = _first_norm(clf).running_mean.clone()
    import leukosk.adapt as adapt

    original, calls = adapt.chw_batch, []

    def failing(chunk):  # Ctrl-C on the second batch
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(chunk)

    monkeypatch.setattr(adapt, "chw_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        adapt_batch_norm(clf, X, batch_size=4)
    torch.testing.assert_close(_first_norm(clf).running_mean, before)
