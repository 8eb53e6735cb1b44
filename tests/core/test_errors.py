import pytest

from landscape.core.errors import ConfigError, DependencyError, LandscapeError
from landscape.core.optional import require


def test_require_names_the_extra():
    with pytest.raises(DependencyError, match=r'pip install "landscape\[plot\]"'):
        require("matplotlib.no_such_submodule_xyz")
    with pytest.raises(ImportError):  # also an ImportError for callers that expect one
        require("no_such_pkg_xyz")


def test_config_error_lists_all_problems():
    e = ConfigError(["a: bad", "b: worse"])
    assert isinstance(e, LandscapeError) and e.problems == ["a: bad", "b: worse"]
    assert "2 problems" in str(e) and "  - b: worse" in str(e)


def test_a_swallowed_signal_is_raised_again_by_check_interrupted():
    import os
    import signal

    from landscape.core.errors import Interrupted
    from landscape.core.signals import check_interrupted, interruptible

    with interruptible():
        try:  # Python drops exceptions raised inside finalisers and weakref callbacks; this stands for that
            os.kill(os.getpid(), signal.SIGUSR1)
        except Interrupted:
            pass
        with pytest.raises(Interrupted, match="SIGUSR1"):
            check_interrupted()
    check_interrupted()  # forgotten once the outermost block has ended
