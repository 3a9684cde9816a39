"""mmrepmlp.compat.apply_all: ``import mmrepmlp`` applies every fix once."""
from mmrepmlp import compat


def test_apply_all_is_idempotent():
    compat.apply_all()
    assert compat.apply_all() == {fix.__name__: False for fix in compat.FIXES}


def test_import_applies_every_fix_in_a_fresh_interpreter(fixed):
    # The import already applied each fix, so applying them again changes nothing; what each
    # fix does is checked by its own test module against the same interpreter.
    assert fixed['applied_again'] == {fix.__name__: False for fix in compat.FIXES}
    assert fixed['patched'] == {fix.__name__: True for fix in compat.FIXES}
