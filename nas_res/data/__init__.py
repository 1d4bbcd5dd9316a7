"""Datasets as uint8 tensors: the dataset `names`, published sets (idx, CIFAR pickles), ImageFolder,
the seeded validation split, class-balanced proxy `subset`s and device-resident augmented `batches`."""
