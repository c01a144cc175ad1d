import resource
import sys

import pytest
import torch

from irconstyle.runtime import retain_freed_memory


def _faults_to_reallocate(megabytes: int) -> int:
    """Minor page faults taken by allocating, touching and freeing a tensor a second time."""
    torch.ones(megabytes << 18)  # first time: the memory is new either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(megabytes << 18)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_retained_memory_is_reused_without_page_faults():
    try:
        assert retain_freed_memory(False)
        default = _faults_to_reallocate(64)
        assert retain_freed_memory(True)
        retained = _faults_to_reallocate(64)
    finally:
        retain_freed_memory(False)
    assert retained < default / 10
    assert retained < 1000  # 64 MB is 16384 pages of 4 kB
