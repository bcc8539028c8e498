"""Datasets: cards (the declarative registry in data_registry/), readers, label conversion, splits and the
Dataset / PairedDataset tables the trainers consume."""
