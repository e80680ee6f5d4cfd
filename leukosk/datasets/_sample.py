"""The PBC sample that ships inside the package (160 images, CC BY 4.0)."""

from importlib import resources
from pathlib import Path

from ._pbc import load_pbc

__all__ = ["load_pbc_sample", "sample_folder"]


def sample_folder():
    """Folder of the PBC sample bundled with leukosk.

    The 160 images (20 of each of the eight PBC classes) lie in PBC's own
    layout, one subfolder per class (``basophil/BA_114899.jpg``, ...), so the
    folder can be given wherever a folder of images or a labelled folder is
    expected: :func:`load_pbc`, ``leukosk predict``, ``leukosk evaluate``,
    ``leukosk count``. Nothing is downloaded; the files are part of the
    installed package.

    Returns
    -------
    folder : pathlib.Path
        The installed sample's folder (read it; do not write into it).

    See Also
    --------
    load_pbc_sample : the same images, decoded or as paths, with labels.

    Examples
    --------
    >>> from leukosk.datasets import sample_folder
    >>> folder = sample_folder()
    >>> sorted(p.name for p in folder.iterdir() if p.is_dir())[:3]
    ['basophil', 'eosinophil', 'erythroblast']
    >>> len(list(folder.glob("*/*.jpg")))
    160
    """
    return Path(str(resources.files("leukosk.datasets") / "data" / "pbc_sample"))


def load_pbc_sample(*, image_size=224, return_paths=False, return_X_y=False):
    """Load the 160-image sample of the PBC dataset bundled with leukosk.

    Twenty real images of each of the eight PBC classes (basophil,
    eosinophil, erythroblast, ig, lymphocyte, monocyte, neutrophil, platelet),
    byte-identical to the published files. Enough to try the API, run the
    demo and the examples; far too few to train a useful model.

    Parameters
    ----------
    image_size : int, default=224
        Side length each whole image is resized to (bilinear, antialiased).
        Ignored when ``return_paths=True``.
    return_paths : bool, default=False
        Return file paths instead of decoded images (for lazy loading).
    return_X_y : bool, default=False
        Return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`load_pbc` returns it: ``images`` (uint8 array (160,
        image_size, image_size, 3), or paths), ``target`` (class names),
        ``target_names``, ``filenames``, ``groups``, ...; ``DESCR`` holds the
        source and licence.
    (images, target) : tuple if ``return_X_y``

    Notes
    -----
    Source: Acevedo et al., "A dataset of microscopic peripheral blood cell
    images for development of automatic recognition systems", Data in Brief
    30 (2020) 105474, doi:10.17632/snkd93bnjr.1, licensed CC BY 4.0.

    Examples
    --------
    >>> from leukosk.datasets import load_pbc_sample
    >>> sample = load_pbc_sample(image_size=32)
    >>> sample.images.shape, sample.images.dtype
    ((160, 32, 32, 3), dtype('uint8'))
    >>> sample.target_names[:3].tolist()
    ['basophil', 'eosinophil', 'erythroblast']
    """
    folder = sample_folder()
    data = load_pbc(folder, image_size=None if return_paths else image_size,
                    cache=False, verbose=False)
    data.DESCR = (folder / "README.md").read_text(encoding="utf-8")
    if return_X_y:
        return data.images, data.target
    return data
