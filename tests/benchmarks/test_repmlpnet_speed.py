"""benchmarks/repmlpnet_speed.py: its CI mode runs both implementations on the same weights
through every path. No timing is asserted; what was measured is checked."""
import re

import pytest
from helpers_tools import load_script


def test_quick_mode_times_both_implementations_on_every_path(capsys):
    results = load_script('benchmarks/repmlpnet_speed.py').main(['--quick'])

    [(batch, timings)] = results.items()
    keys = {(name, path) for name in ('mmrepmlp', 'MMPretrain')
            for path in ('eager', 'channels_last', 'optimized')}
    assert batch == 2
    assert set(timings['seconds']) == set(timings['first_call']) == keys
    assert all(timings['seconds'][key] > 0 for key in keys)
    out = capsys.readouterr().out
    # the logits were compared before timing
    difference = float(re.search(r'relative difference of the deploy logits ([0-9.e+-]+)',
                                 out)[1])
    assert difference <= 1e-4
    assert re.search(r'^ratio mmrepmlp / MMPretrain images/s: eager [0-9.]+x, channels_last '
                     r'[0-9.]+x, optimized [0-9.]+x; best paths', out, re.MULTILINE)
    assert '| mmrepmlp | ' in out and '| MMPretrain | ' in out


def test_other_weights_are_refused_before_timing(monkeypatch):
    """Logits that differ stop the run: a comparison of two different functions is not one."""
    script = load_script('benchmarks/repmlpnet_speed.py')
    original = script.convert_repmlpnet_state_dict

    def perturbed(state_dict):
        converted = original(state_dict)
        converted['head.fc.bias'] = converted['head.fc.bias'] + 1
        return converted

    monkeypatch.setattr(script, 'convert_repmlpnet_state_dict', perturbed)
    with pytest.raises(SystemExit, match='computes something else than MMPretrain'):
        script.main(['--quick'])
