import sys

import pytest
import torch

from irconstyle.runtime import retain_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_retaining_freed_memory_can_be_switched_on_and_back_off():
    # How many page faults it saves depends on the heap's state and the kernel (measured in benchmarks/, not
    # asserted here: a fresh process saw 0 instead of 16,384 faults for a 64 MB reallocation in some runs only).
    try:
        assert retain_freed_memory(True)
        assert torch.ones(1 << 20).sum() == 1 << 20
    finally:
        assert retain_freed_memory(False)
