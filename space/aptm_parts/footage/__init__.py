"""The footage modules of the `aptm` package (`aptm/footage/`): sources, detection, crops, ranking and labels, copied
here when the Space is published (see `aptm_parts/__init__.py`)."""
