import inspect

import descentlab.analysis
from descentlab._cli import analysis as analysis_cli


def test_every_public_analysis_object_has_a_docstring():
    missing = [
        name
        for name in descentlab.analysis.__all__
        if not inspect.getdoc(getattr(descentlab.analysis, name))
        or inspect.getdoc(getattr(descentlab.analysis, name)) == inspect.getdoc(object)
    ]
    missing += [
        name
        for name in ("register", "resolve_optimizer", "validate_options")
        if not inspect.getdoc(getattr(analysis_cli, name))
    ]
    assert missing == []
