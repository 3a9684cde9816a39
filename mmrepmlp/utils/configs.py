"""Walking nested configs: dicts, and lists or tuples of them, at any depth."""


def config_dicts(node, path=''):
    """Yield ``(path, dict)`` for every dict in ``node`` (``node`` itself included), parents
    before their children.

    Paths join keys with ``.`` and list indices as ``[i]`` after ``path``:
    ``model.backbone``, ``model.init_cfg[0]``. The caller may change a dict when it is
    yielded: its entries are read after that, from a copy of its items.
    """
    if isinstance(node, dict):
        yield path, node
        for key, value in list(node.items()):
            yield from config_dicts(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from config_dicts(item, f'{path}[{index}]')
