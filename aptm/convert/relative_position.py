"""Resize Swin relative-position bias tables between window sizes as APTM's pre-training initialisation does, in
torch (the original called SciPy's `interp2d(kind="cubic")`, removed in SciPy 1.14).

The `2w - 1` source offsets are laid out on a geometric progression: the step between neighbouring offsets grows by a
factor `q` away from 0, with `q` found by bisection in [1.01, 1.5] so that the outermost source offset reaches the
target's outermost integer offset. Near 0 the spacing stays about 1, so short-range biases keep their values; when
the window grows (13 x 13 -> 15 x 15) the table is stretched mostly at its edges, and when it shrinks (13 x 13 ->
7 x 7 for APTM's window-4 last stage) `q` stays at 1.01 and the result is nearly the central crop. The table is then
interpolated at the integer target offsets with a tensor-product not-a-knot cubic spline, which is the interpolating
bicubic spline that `interp2d` fitted to gridded data; target offsets beyond the outermost source offset (when the
window grows more than q = 1.5 allows) take the edge values, as `interp2d` did. On random tables the result equals
SciPy 1.13's `interp2d` procedure in float32 (13->15, 13->7, 15->7, 7->13).

    table_15 = resize_relative_position_table(table_13, 15)     # [169, heads] -> [225, heads]
"""

import torch


def geometric_offsets(source_size, target_size):
    """Positions `[source_size]` (float64, symmetric, 0 in the middle) of the source offsets on the target's offset
    axis."""
    half, target_half = source_size // 2, target_size // 2

    def reach(ratio):  # outermost offset 1 + q + ... + q^(half-1)
        return sum(ratio**i for i in range(half))

    low, high = 1.01, 1.5
    ratio = low
    while high - low > 1e-6:
        ratio = (low + high) / 2.0
        if reach(ratio) > target_half:
            high = ratio
        else:
            low = ratio
    steps = torch.tensor([ratio**i for i in range(half)], dtype=torch.float64)
    positive = torch.cumsum(steps, dim=0)
    return torch.cat([-positive.flip(0), torch.zeros(1, dtype=torch.float64), positive])


def cubic_spline_matrix(nodes, points):
    """Linear operator `[len(points), len(nodes)]` of not-a-knot cubic spline interpolation through `nodes` (strictly
    increasing, at least 4), evaluated at `points` (clamped to the node range)."""
    n = len(nodes)
    if n < 4:
        raise ValueError(f"a not-a-knot cubic spline needs at least 4 nodes, got {n}")
    widths = nodes[1:] - nodes[:-1]
    # second derivatives m = A^-1 B y: continuity of the first derivative at interior nodes, continuity of the third
    # derivative across the first and last interior nodes (not-a-knot)
    system = torch.zeros(n, n, dtype=torch.float64)
    rhs = torch.zeros(n, n, dtype=torch.float64)
    for i in range(1, n - 1):
        left, right = widths[i - 1], widths[i]
        system[i, i - 1], system[i, i], system[i, i + 1] = left, 2 * (left + right), right
        rhs[i, i - 1], rhs[i, i], rhs[i, i + 1] = 6 / left, -6 / left - 6 / right, 6 / right
    for row, (a, b, c) in ((0, (0, 1, 2)), (n - 1, (n - 3, n - 2, n - 1))):
        first, second = widths[a], widths[b]
        system[row, a], system[row, b], system[row, c] = second, -(first + second), first
    curvature = torch.linalg.solve(system, rhs)

    points = points.to(torch.float64).clamp(nodes[0], nodes[-1])
    interval = (torch.searchsorted(nodes, points, right=True) - 1).clamp(0, n - 2)
    width = widths[interval]
    to_right, to_left = (nodes[interval + 1] - points) / width, (points - nodes[interval]) / width
    identity = torch.eye(n, dtype=torch.float64)
    return (to_right[:, None] * identity[interval] + to_left[:, None] * identity[interval + 1]
            + (to_right**3 - to_right)[:, None] * width[:, None] ** 2 / 6 * curvature[interval]
            + (to_left**3 - to_left)[:, None] * width[:, None] ** 2 / 6 * curvature[interval + 1])


def resize_relative_position_table(table, size):
    """`[(2w-1)^2, heads]` table -> `[size^2, heads]` (`size` = 2w'-1). The same size returns a copy."""
    old = round(table.shape[0] ** 0.5)
    if old * old != table.shape[0] or table.dim() != 2:
        raise ValueError(f"a relative-position table is [(2w-1)^2, heads]; got shape {tuple(table.shape)}")
    if old == size:
        return table.clone()
    half = size // 2
    weights = cubic_spline_matrix(geometric_offsets(old, size),
                                  torch.arange(-half, half + 1, dtype=torch.float64))
    grid = table.to(torch.float64).reshape(old, old, -1)
    resized = torch.einsum("ai,bj,ijh->abh", weights, weights, grid)
    return resized.reshape(size * size, -1).to(table.dtype)
