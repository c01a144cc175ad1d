"""Data order: seeded per epoch, sharded over ranks, resumable at any batch."""

import pytest

from irconstyle.training.distributed import ShardedEpochSampler, batches_per_epoch, epoch_seed


def test_epoch_order_depends_on_seed_and_epoch_only():
    first = ShardedEpochSampler(50, batch_size=4, seed=3, epoch=0).indices()
    assert first == ShardedEpochSampler(50, batch_size=4, seed=3, epoch=0).indices()
    assert first != ShardedEpochSampler(50, batch_size=4, seed=3, epoch=1).indices()
    assert first != ShardedEpochSampler(50, batch_size=4, seed=4, epoch=0).indices()
    assert len(first) == 48 and len(set(first)) == 48  # 12 whole batches, no repeats


def test_ranks_get_disjoint_equal_shards():
    shards = [ShardedEpochSampler(50, batch_size=4, seed=0, epoch=2, rank=r, world_size=3).indices() for r in range(3)]
    assert all(len(s) == 16 for s in shards)
    assert not set(shards[0]) & set(shards[1]) and not set(shards[1]) & set(shards[2])


def test_start_batch_skips_exactly_the_consumed_batches():
    full = ShardedEpochSampler(40, batch_size=4, seed=0, epoch=0).indices()
    rest = ShardedEpochSampler(40, batch_size=4, seed=0, epoch=0, start_batch=3)
    assert rest.indices() == full[12:]
    assert len(rest) == 28


def test_too_small_dataset_and_bad_start_are_clear_errors():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        batches_per_epoch(7, batch_size=4, world_size=2)
    with pytest.raises(ValueError, match="start_batch"):
        ShardedEpochSampler(40, batch_size=4, seed=0, epoch=0, start_batch=10)


def test_epoch_seeds_do_not_collide_for_shifted_pairs():
    assert epoch_seed(10, 1) != epoch_seed(11, 0)
