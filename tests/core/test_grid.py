import numpy as np
import pytest

from landscape.core.errors import ConfigError
from landscape.core.grid import Grid, chunked, parse_range


def test_parse_range():
    assert parse_range("-1:1:5").tolist() == [-1, -0.5, 0, 0.5, 1]
    assert parse_range("0:2:3").tolist() == [0, 1, 2]
    assert parse_range("0:0:1").tolist() == [0]
    assert parse_range([0.5, 0.1]).tolist() == [0.5, 0.1]
    for bad, msg in (("1:0:3", "MIN < MAX"), ("0:1", "MIN:MAX:NUM"), ("a:1:3", "MIN:MAX:NUM"), ("0:1:0", "NUM >= 1"),
                     ("0:1:1", "MIN == MAX")):
        with pytest.raises(ConfigError, match=msg):
            parse_range(bad)


def test_grid_ij_indexing_non_square_and_line():
    g = Grid(parse_range("0:2:3"), parse_range("10:14:5"))
    assert g.shape == (3, 5) and g.size == 15
    a, b = g.coords(np.arange(15))
    # flat k -> (i, j) = divmod(k, 5): alpha varies along rows, beta along columns
    assert a.reshape(3, 5)[:, 0].tolist() == [0, 1, 2] and b.reshape(3, 5)[0].tolist() == [10, 11, 12, 13, 14]
    line = Grid(parse_range("0:1:4"))
    assert line.shape == (4,) and line.coords([3])[1].tolist() == [0.0]
    assert [c.tolist() for c in chunked(np.arange(7), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
