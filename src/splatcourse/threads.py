"""Run torch on one thread for a moment.

Small tensor work (a widget's render, a ray-marching loop of many small ops) gains nothing from
intra-op threads, and on a busy CPU waiting for the other threads made it up to ~20x slower
(100 ms instead of 5 ms for a 96 x 96 widget render): the difference between live and laggy.

Used by: the widgets of lessons 1-4, the NeRF of lesson 6 and the synthetic capture (no notebook imports it directly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
