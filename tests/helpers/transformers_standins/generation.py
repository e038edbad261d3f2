"""Stand-in for `tests/generation/test_utils.py` (not in the sdist). `ModelTesterMixin` only checks
`issubclass(test, GenerationTesterMixin)` against `model.can_generate()`; APTM cannot generate and no APTM test
inherits it, which is what the check wants."""


class GenerationTesterMixin:
    """Never inherited by the APTM tests (APTM has no `generate`)."""
