"""cnnlab.distributed: two gloo processes under DDP reproduce single-process training on the whole batch."""

import pytest
import torch

from cnnlab.distributed import (
    DDPRun,
    ScalingCase,
    StepTime,
    flat_params,
    make_net,
    run_ddp,
    synthetic_batch,
    time_single_process,
    train_single_process,
)


def test_two_processes_match_single_process_training():
    cases = [ScalingCase(width=4, batch_size=8, fc_width=6), ScalingCase(width=3, batch_size=4)]
    run = run_ddp(cases, world_size=2, num_steps=1, train_steps=2, lr=0.5, allreduce_sizes=(10, 1000))
    assert isinstance(run, DDPRun)
    reference = train_single_process(width=4, batch_size=8, num_steps=2, lr=0.5, fc_width=6)
    untrained = (torch.manual_seed(0), flat_params(make_net(4, 6)))[1]
    assert run.final_params.shape == reference.shape
    assert (reference - untrained).abs().max() > 1e-3, "the reference must actually move"
    torch.testing.assert_close(run.final_params, reference, atol=1e-6, rtol=1e-5)
    t, t2 = run.times
    assert (t.world_size, t.width, t.batch_size, t.fc_width) == (2, 4, 8, 6)
    assert t.num_params == sum(p.numel() for p in make_net(4, 6).parameters())
    assert t2.num_params == sum(p.numel() for p in make_net(3).parameters())
    assert t.step_seconds > 0 and t.allreduce_seconds > 0
    assert [n for n, _ in run.allreduce_sweep] == [10, 1000] and all(s > 0 for _, s in run.allreduce_sweep)


def test_single_process_timing_and_records():
    (t,) = time_single_process([ScalingCase(width=3, batch_size=4)], num_steps=1)
    assert isinstance(t, StepTime) and t.world_size == 1 and t.allreduce_seconds == 0.0
    assert t.samples_per_second == pytest.approx(4 / t.step_seconds)
    X, y = synthetic_batch(6, seed=3)
    X2, y2 = synthetic_batch(6, seed=3)
    assert X.shape == (6, 1, 8, 8) and torch.equal(X, X2) and torch.equal(y, y2)
    assert make_net(5)(X).shape == (6, 10) and make_net(5, 7)(X).shape == (6, 10)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        run_ddp([ScalingCase(width=4, batch_size=7)], world_size=2)
    with pytest.raises(ValueError, match="at least one"):
        run_ddp([], world_size=2)
    with pytest.raises(ValueError, match="width"):
        make_net(0)
