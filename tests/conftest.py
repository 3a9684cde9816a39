"""The test suite's root: pytest puts this folder on ``sys.path`` (its rootdir conftest), so
every test module can import the shared helpers in ``tests/helpers_*.py``."""
