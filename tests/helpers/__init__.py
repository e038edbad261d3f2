"""Shared test helpers: paths, tiny models and batches, generated images, dataset trees on disk, the golden
tensors of the original code, and a local fake Hub."""
