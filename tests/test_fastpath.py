"""The fast paths: bfloat16 autocast, channels-last, batches cut on the device,
inference mode, torch.compile. All device-agnostic; exercised here on the CPU
(and on CUDA with LEUKOSK_TEST_DEVICE=cuda)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import amp_warning

from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.classifier._dataset import DeviceBatches, ImageDataset


def _conv_output_dtypes(clf, X):
    """dtypes of the first convolution's output while predicting ``X``."""
    seen = []
    conv = clf.module_.backbone.features[0]
    handle = conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        proba = clf.predict_proba(X)
    finally:
        handle.remove()
    return seen, proba


def test_amp_runs_the_network_in_bfloat16_and_returns_float32(tiny, fast):
    X, y = tiny
    with amp_warning():
        clf = VGG19LeukocyteClassifier(amp=True, **fast).fit(X, y)
    dtypes, proba = _conv_output_dtypes(clf, X)
    assert set(dtypes) == {torch.bfloat16}
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(clf.history_[-1, "train_loss"])


def test_default_is_float32(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    assert set(_conv_output_dtypes(clf, X)[0]) == {torch.float32}


@pytest.mark.parametrize("amp, match", [
    ("float16", "float16 needs gradient scaling"),
    ("int8", "'amp' parameter .* Got 'int8'"),
])
def test_unsupported_amp_is_a_clear_error(tiny, fast, amp, match):
    X, y = tiny
    with pytest.raises(ValueError, match=match):
        VGG19LeukocyteClassifier(amp=amp, **fast).fit(X, y)


def test_channels_last_changes_layout_not_results(tiny, fast):
    X, y = tiny
    plain = VGG19LeukocyteClassifier(**fast).fit(X, y)
    nhwc = VGG19LeukocyteClassifier(channels_last=True, **fast).fit(X, y)
    weight = nhwc.module_.backbone.features[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.module_.backbone.features[0].weight.is_contiguous(
        memory_format=torch.channels_last)
    np.testing.assert_allclose(nhwc.predict_proba(X), plain.predict_proba(X),
                               rtol=1e-3, atol=1e-4)


def test_array_input_is_batched_on_the_device(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    assert isinstance(clf.get_iterator(clf.get_dataset(X, y), training=True),
                      DeviceBatches)


@pytest.mark.parametrize("params", [
    dict(data_on_device=False),
    dict(iterator_train__num_workers=0),  # a DataLoader option: user wants one
])
def test_dataloader_is_kept_when_asked_for(tiny, fast, params):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast, **params).fit(X, y)
    iterator = clf.get_iterator(clf.get_dataset(X, y), training=True)
    assert isinstance(iterator, torch.utils.data.DataLoader)


def test_file_paths_stream_through_the_dataloader(pbc_folder, fast):
    paths = sorted(str(p) for p in pbc_folder.rglob("*.jpg"))
    y = [p.split("/")[-2] for p in paths]
    clf = VGG19LeukocyteClassifier(**fast).fit(paths, y)
    assert isinstance(clf.get_iterator(clf.get_dataset(paths, y), training=True),
                      torch.utils.data.DataLoader)
    forced = VGG19LeukocyteClassifier(data_on_device=True, **fast)
    with pytest.raises(ValueError, match="data_on_device=True needs images in an"):
        forced.fit(paths, y)


def test_bad_data_on_device_value(tiny, fast):
    with pytest.raises(ValueError, match="'data_on_device' parameter .* Got 'yes'"):
        VGG19LeukocyteClassifier(data_on_device="yes", **fast).fit(*tiny)


def test_device_batches_train_exactly_like_the_dataloader(tiny, fast):
    """Both iterators shuffle alike and give the same batches: same model."""
    X, y = tiny
    fast.update(max_epochs=2)
    on_device = VGG19LeukocyteClassifier(data_on_device=True, **fast).fit(X, y)
    loader = VGG19LeukocyteClassifier(data_on_device=False, **fast).fit(X, y)
    np.testing.assert_allclose(on_device.history_[:, "train_loss"],
                               loader.history_[:, "train_loss"], rtol=1e-5)
    np.testing.assert_allclose(on_device.predict_proba(X), loader.predict_proba(X),
                               rtol=1e-4, atol=1e-6)


def test_validation_split_is_batched_on_the_device(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(validation=0.3, **fast).fit(X, y)
    assert np.isfinite(clf.history_[-1, "valid_loss"])
    _, valid = clf.get_split_datasets(clf.get_dataset(X, y), y)
    assert isinstance(clf.get_iterator(valid), DeviceBatches)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), shuffle=st.booleans(),
       seed=st.integers(0, 2**16))
def test_device_batches_visit_every_image_once_per_pass(n, batch_size, shuffle, seed):
    X = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(3, axis=3)
    batches = DeviceBatches(ImageDataset(X, np.arange(n)), batch_size, shuffle, "cpu")
    torch.manual_seed(seed)
    for _ in range(2):  # iterable again, like a DataLoader
        seen = [(xb[:, 0, 0, 0].tolist(), yb.tolist()) for xb, yb in batches]
        assert len(seen) == len(batches) == -(-n // batch_size)
        assert all(len(ys) <= batch_size for _, ys in seen)
        images = [v for xs, _ in seen for v in xs]
        targets = [v for _, ys in seen for v in ys]
        assert images == targets  # images stay with their labels
        assert sorted(targets) == list(range(n))


def test_prediction_runs_in_inference_mode_and_in_batches(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    sizes, modes = [], []

    def hook(module, inputs, output):
        sizes.append(len(inputs[0]))
        modes.append(torch.is_inference_mode_enabled())

    handle = clf.module_.register_forward_hook(hook)
    try:
        clf.predict_proba(np.concatenate([X, X]))
    finally:
        handle.remove()
    assert sum(sizes) == 2 * len(X) and max(sizes) <= fast["batch_size"]
    assert all(modes)


def test_tta_with_amp_and_channels_last(tiny, fast):
    X, y = tiny
    with amp_warning():
        clf = VGG19LeukocyteClassifier(amp=True, channels_last=True, tta=True,
                                       **fast).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-4)
    rotated = np.ascontiguousarray(np.rot90(X, 1, axes=(1, 2)))
    np.testing.assert_allclose(clf.predict_proba(rotated), proba, atol=2e-2)


def test_compiled_model_trains_saves_and_loads(tiny, fast, tmp_path):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(compile=True, compile__backend="eager",
                                   augment=RandomReflectRotate(random_state=0),
                                   **fast).fit(X, y)
    assert hasattr(clf.module_, "_orig_mod")
    clf.save(tmp_path / "model.safetensors")
    loaded = VGG19LeukocyteClassifier.load(tmp_path / "model.safetensors",
                                           compile=False)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X),
                               rtol=1e-5, atol=1e-6)


def test_emulated_bfloat16_on_this_cpu_is_warned_about(tiny, fast):
    from leukosk.utils._precision import amp_dtype, cpu_has_bf16

    if cpu_has_bf16():
        pytest.skip("this CPU computes bfloat16 natively")
    with pytest.warns(UserWarning, match="AVX512-BF16 or AMX.*amp=False"):
        assert amp_dtype(True, "cpu") is torch.bfloat16


def _train_batches(clf):
    return [sum("train_loss" in b for b in epoch["batches"]) for epoch in clf.history_]


def test_device_batches_honour_drop_last(tiny, fast):
    """Issue 21: data_on_device=True ignored iterator_train__drop_last."""
    X, y = tiny  # 18 images, batches of 8: 2 full ones and one of 2
    fast.update(iterator_train__drop_last=True)
    on_device = VGG19LeukocyteClassifier(data_on_device=True, **fast).fit(X, y)
    loader = VGG19LeukocyteClassifier(data_on_device=False, **fast).fit(X, y)
    assert _train_batches(on_device) == _train_batches(loader) == [2]
    auto = VGG19LeukocyteClassifier(**fast).fit(X, y)  # drop_last keeps the fast path
    assert isinstance(auto.get_iterator(auto.get_dataset(X, y), training=True),
                      DeviceBatches)
    assert _train_batches(auto) == [2]
    unshuffled = VGG19LeukocyteClassifier(**fast, iterator_train__shuffle=False).fit(X, y)
    batches = unshuffled.get_iterator(unshuffled.get_dataset(X, y), training=True)
    assert not batches.shuffle and batches.drop_last


def test_custom_iterator_train_is_used_or_refused(tiny, fast):
    """Issue 21: data_on_device=True silently ignored a custom iterator_train."""
    X, y = tiny
    made = []

    class Loader(torch.utils.data.DataLoader):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    VGG19LeukocyteClassifier(iterator_train=Loader, **fast).fit(X, y)  # "auto"
    assert made
    with pytest.raises(ValueError, match="data_on_device=True.*iterator_train=Loader.*"
                                         "data_on_device='auto'"):
        VGG19LeukocyteClassifier(iterator_train=Loader, data_on_device=True,
                                 **fast).fit(X, y)
    with pytest.raises(ValueError, match="data_on_device=True.*iterator_train__sampler"):
        VGG19LeukocyteClassifier(iterator_train__sampler=[0, 1], data_on_device=True,
                                 **fast).fit(X, y)
