"""Synthetic channel data for the DMP: planted personas, identities, campaigns and dirt,
written in the landing layout of docs/landing.md with the ground truth beside it."""

from datagen.generate import generate

__all__ = ["generate"]
