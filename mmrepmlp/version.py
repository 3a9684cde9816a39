__version__ = '0.1.0'

# mmcv is checked here, as MMSegmentation checks it, rather than required by name at install:
# full mmcv and mmcv-lite install the same package, so requiring one would overwrite the other.
MMCV_MIN, MMCV_MAX = '2.1.0', '2.2.0'


def _version_tuple(version):
    return tuple(int(part) for part in version.split('+')[0].split('.')[:3] if part.isdigit())


def check_mmcv(version=None):
    """Raise ``ImportError`` unless mmcv (full mmcv or mmcv-lite) is installed in a supported
    version; ``version`` overrides the installed one (for tests)."""
    if version is None:
        try:
            import mmcv
        except ImportError:
            version = None
        else:
            version = mmcv.__version__
    if version is None or not (_version_tuple(MMCV_MIN) <= _version_tuple(version)
                               < _version_tuple(MMCV_MAX)):
        found = f'mmcv {version} is installed' if version else 'mmcv is not installed'
        raise ImportError(f'mmrepmlp needs mmcv>={MMCV_MIN},<{MMCV_MAX} and {found}: keep a '
                          f'full mmcv of that range, or pip install "mmcv-lite=={MMCV_MIN}" '
                          'where full mmcv does not build (it has no compiled ops, and '
                          'installing it over a full mmcv replaces that one)')
