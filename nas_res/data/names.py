"""The datasets `load_data` (nas_res.data.dataset) reads, by how a user names them. This module imports nothing,
so help texts can list them without importing torch."""

DATASETS = (
    "digits",
    "mnist",
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "imagefolder:PATH",
    "synthetic[:CxHxW[:CLASSES[:N]]]",
)
