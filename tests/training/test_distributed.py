"""Data order: seeded per epoch, sharded over ranks, resumable at any batch."""

import itertools

import pytest

from irconstyle.training.distributed import EpochKeyedDataset, ShardedBatchSampler, batches_per_epoch, epoch_seed


def _take(sampler: ShardedBatchSampler, count: int) -> list[list[tuple[int, int]]]:
    return list(itertools.islice(iter(sampler), count))


def test_epoch_order_depends_on_seed_and_epoch_only():
    first = ShardedBatchSampler(50, batch_size=4, seed=3).epoch_indices(0)
    assert first == ShardedBatchSampler(50, batch_size=4, seed=3).epoch_indices(0)
    assert first != ShardedBatchSampler(50, batch_size=4, seed=3).epoch_indices(1)
    assert first != ShardedBatchSampler(50, batch_size=4, seed=4).epoch_indices(0)
    assert len(first) == 48 and len(set(first)) == 48  # 12 whole batches, no repeats


def test_batches_run_on_across_epochs_with_epoch_keys():
    sampler = ShardedBatchSampler(10, batch_size=4, seed=0)
    batches = _take(sampler, 5)  # 2 batches per epoch
    assert [{epoch for epoch, _ in batch} for batch in batches] == [{0}, {0}, {1}, {1}, {2}]
    assert [i for _, i in batches[0] + batches[1]] == sampler.epoch_indices(0)


def test_ranks_get_disjoint_equal_shards():
    shards = [ShardedBatchSampler(50, batch_size=4, seed=0, rank=r, world_size=3).epoch_indices(2) for r in range(3)]
    assert all(len(s) == 16 for s in shards)
    assert not set(shards[0]) & set(shards[1]) and not set(shards[1]) & set(shards[2])


def test_starting_position_continues_the_same_stream():
    full = _take(ShardedBatchSampler(40, batch_size=4, seed=0), 25)
    resumed = _take(ShardedBatchSampler(40, batch_size=4, seed=0, start_epoch=1, start_batch=3), 12)
    assert resumed == full[13:25]


def test_too_small_dataset_and_bad_start_are_clear_errors():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        batches_per_epoch(7, batch_size=4, world_size=2)
    with pytest.raises(ValueError, match="start_batch"):
        ShardedBatchSampler(40, batch_size=4, seed=0, start_batch=10)


def test_epoch_keyed_dataset_sets_the_epoch_before_each_item():
    class Recorder:
        epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __getitem__(self, index):
            return (self.epoch, index)

    keyed = EpochKeyedDataset(Recorder())
    assert keyed[(4, 7)] == (4, 7) and keyed[(0, 2)] == (0, 2)


def test_epoch_seeds_do_not_collide_for_shifted_pairs():
    assert epoch_seed(10, 1) != epoch_seed(11, 0)
