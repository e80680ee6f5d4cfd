"""PBC's classes and their sizes: the one place they are written down."""

__all__ = ["PBC_COUNTS", "PBC_CLASSES"]

#: Images per class in the published PBC dataset (Acevedo et al. 2020; 17,092
#: in all), in the dataset's (alphabetical) folder order.
PBC_COUNTS = {"basophil": 1218, "eosinophil": 3117, "erythroblast": 1551,
              "ig": 2895, "lymphocyte": 1214, "monocyte": 1420,
              "neutrophil": 3329, "platelet": 2348}

#: The eight classes of the PBC dataset (folder names).
PBC_CLASSES = tuple(PBC_COUNTS)
