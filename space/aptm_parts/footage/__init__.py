"""The footage modules of the `aptm` package (`aptm/footage/`): sources, detection, crops, tracking, ranking, labels
and timeline, copied here when the Space is published (see `aptm_parts/__init__.py`)."""
