"""Loaders that map public retail data sets into the world folder format of `docs/contracts.md`."""
