"""The relative-position table resize of the original pre-training initialisation, in torch: geometric offset layout,
not-a-knot cubic spline (exact on cubics), identity at the same size, near-crop when the window shrinks."""

import pytest
import torch

from aptm.convert.relative_position import cubic_spline_matrix, geometric_offsets, resize_relative_position_table


def cubic(x, coefficients):
    return sum(c * x**power for power, c in enumerate(coefficients))


@pytest.mark.parametrize("source, target", [(13, 15), (13, 7), (15, 7), (7, 13)])
def test_geometric_offsets(source, target):
    offsets = geometric_offsets(source, target)
    assert len(offsets) == source and offsets[source // 2] == 0
    torch.testing.assert_close(offsets, -offsets.flip(0), rtol=0, atol=0)
    steps = offsets[source // 2 :].diff()
    ratios = steps[1:] / steps[:-1]
    assert steps[0] == 1 and torch.allclose(ratios, ratios[0].expand_as(ratios))  # step i is q^i
    if (source, target) == (13, 15):  # the outermost source offset reaches the outermost target offset
        assert abs(offsets[-1] - target // 2) < 1e-4 and 1.01 < ratios[0] < 1.5
    elif target > source:  # q is capped at 1.5: 7 -> 13 reaches 4.75, the offsets beyond take the edge values
        assert abs(ratios[0] - 1.5) < 1e-5 and abs(offsets[-1] - 4.75) < 1e-5
    else:  # q stays at its lower bound: spacing about 1, the central offsets keep their places
        assert abs(ratios[0] - 1.01) < 1e-5


def test_spline_is_exact_on_cubics_and_interpolates_its_nodes():
    nodes = geometric_offsets(13, 15)
    points = torch.linspace(-6.9, 6.9, 29, dtype=torch.float64)  # inside the nodes (the outermost is 7 - 1e-5)
    weights = cubic_spline_matrix(nodes, points)
    coefficients = (0.3, -1.2, 0.05, 0.02)
    torch.testing.assert_close(weights @ cubic(nodes, coefficients), cubic(points, coefficients), rtol=0, atol=1e-10)
    torch.testing.assert_close(cubic_spline_matrix(nodes, nodes), torch.eye(13, dtype=torch.float64), rtol=0, atol=1e-12)
    values = torch.randn(13, dtype=torch.float64)
    # not a plain polyline: between nodes a random curve is not the linear interpolation
    between = (nodes[:-1] + nodes[1:]) / 2
    assert (cubic_spline_matrix(nodes, between) @ values - (values[:-1] + values[1:]) / 2).abs().max() > 1e-3
    with pytest.raises(ValueError, match="at least 4"):
        cubic_spline_matrix(nodes[:3], points)


def test_resize_reproduces_bicubic_tables_at_the_integer_offsets():
    for source, target in ((13, 15), (13, 7)):
        offsets = geometric_offsets(source, target)
        rows, cols = (0.1, 0.4, -0.03, 0.004), (-0.2, 0.1, 0.02, -0.001)
        table = torch.stack([cubic(offsets, rows)[:, None] * cubic(offsets, cols)[None, :],
                             cubic(offsets, cols)[:, None] + cubic(offsets, rows)[None, :]], dim=-1)
        resized = resize_relative_position_table(table.reshape(source * source, 2), target).reshape(target, target, 2)
        new = torch.arange(-(target // 2), target // 2 + 1, dtype=torch.float64)
        expected = torch.stack([cubic(new, rows)[:, None] * cubic(new, cols)[None, :],
                                cubic(new, cols)[:, None] + cubic(new, rows)[None, :]], dim=-1)
        inside = new.abs() <= offsets[-1]  # the bisection leaves the outermost node within 2e-5 of offset 7
        torch.testing.assert_close(resized[inside][:, inside], expected[inside][:, inside], rtol=0, atol=1e-9)
        torch.testing.assert_close(resized, expected, rtol=0, atol=1e-4)


def test_same_size_is_identity_and_shrinking_keeps_the_centre():
    table = torch.randn(169, 4)
    resized = resize_relative_position_table(table, 13)
    assert torch.equal(resized, table) and resized.data_ptr() != table.data_ptr()
    assert resize_relative_position_table(table, 15).shape == (225, 4)
    grown = resize_relative_position_table(torch.randn(49, 2), 13).reshape(13, 13, 2)
    assert torch.equal(grown[0], grown[1]) and torch.equal(grown[:, -1], grown[:, -2])  # beyond 4.75: edge values
    offsets = torch.arange(-6, 7, dtype=torch.float32)
    smooth = torch.cos(0.3 * offsets)[:, None] * torch.sin(0.2 * offsets + 1)[None, :]
    small = resize_relative_position_table(smooth.reshape(169, 1), 7).reshape(7, 7)
    assert (small - smooth[3:10, 3:10]).abs().max() < 0.02  # window 4 takes the biases of offsets -3..3
    assert small.dtype == torch.float32
    with pytest.raises(ValueError, match=r"\(2w-1\)\^2"):
        resize_relative_position_table(torch.zeros(10, 2), 5)
