"""Fixtures shared by the test files."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread: tiny convolutions on a shared, busy CPU run far faster on one thread than on two that wait
    for each other (and torchrun's workers run with OMP_NUM_THREADS=1 too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
