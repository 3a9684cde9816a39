"""Recognising this package's own patches, so that applying a fix twice changes nothing."""

# Attribute set on everything the fixes patch in, so that a second call (or a second copy of
# the package) recognises its own work and does not wrap twice.
_MARK = '__mmrepmlp_compat__'


def mark(obj):
    """Tag ``obj`` as a patch of this package and return it."""
    setattr(obj, _MARK, True)
    return obj


def is_ours(obj):
    """Whether ``obj`` is a patch of this package."""
    return getattr(obj, _MARK, False)
