import json
import os
import stat

import pytest
from matplotlib.figure import Figure

from descentlab.analysis import save_figure, write_json


class BrokenFigure:
    def savefig(self, file, **options):
        file.write(b"half a pic")
        raise RuntimeError("disk full")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_json({"answer": 42}, tmp_path / "deep" / "result.json")
    assert json.loads(path.read_text()) == {"answer": 42}
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    figure_path = save_figure(Figure(), tmp_path / "deep" / "plot.png")
    original = figure_path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(BrokenFigure(), figure_path)
    assert figure_path.read_bytes() == original
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["plot.png", "result.json"]


def test_figure_path_needs_a_suffix(tmp_path):
    with pytest.raises(ValueError, match="needs a suffix"):
        save_figure(Figure(), tmp_path / "plot")
