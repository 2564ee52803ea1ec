"""cnnlab.train: the training loop learns, records its history and evaluates like a hand-written loop."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.core import seed_everything
from cnnlab.data import load_digits_split
from cnnlab.train import History, accuracy, as_loader, evaluate, fit, parameter_count, predict


def _net():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(128, 10))


def test_fit_learns_digits_and_records_history():
    seed_everything(0)
    split = load_digits_split()
    net = _net()
    hist = fit(net, (split.X_train, split.y_train), (split.X_test, split.y_test), num_epochs=4, lr=3e-3,
               progress=False)
    assert isinstance(hist, History) and len(hist) == 4
    assert len(hist.val_acc) == 4 and len(hist.lr) == 4
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_acc[-1] > 0.8


def test_evaluate_matches_manual_computation():
    seed_everything(1)
    X, y = torch.randn(50, 1, 8, 8), torch.randint(0, 10, (50,))
    net = _net()
    loss, acc = evaluate(net, (X, y), batch_size=7)
    with torch.no_grad():
        out = net(X)
    assert loss == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-5)
    assert acc == pytest.approx((out.argmax(1) == y).float().mean().item())
    assert torch.equal(predict(net, X, batch_size=9), out.argmax(1))
    assert accuracy(out, y) == pytest.approx(acc)


def test_evaluate_restores_training_mode():
    net = _net().train()
    evaluate(net, (torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)))
    assert net.training


def test_fit_scheduler_and_transform_are_used():
    seed_everything(2)
    X, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    calls = []
    hist = fit(net, (X, y), num_epochs=2, batch_size=32, optimizer=opt, scheduler=sched,
               transform=lambda t: calls.append(t.shape) or t, progress=False)
    assert len(calls) == 4  # 2 epochs x 2 batches
    assert hist.lr == pytest.approx([0.1 * 0.5**2, 0.1 * 0.5**4])


def test_as_loader_and_bad_arguments():
    X, y = torch.randn(10, 3), torch.arange(10)
    loader = as_loader((X, y), batch_size=4)
    assert isinstance(loader, DataLoader) and len(loader) == 3
    same = DataLoader(TensorDataset(X, y))
    assert as_loader(same) is same
    with pytest.raises(ValueError):
        as_loader((X, y[:5]))
    with pytest.raises(ValueError):
        as_loader([X])
    with pytest.raises(ValueError):
        fit(_net(), (torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)), num_epochs=0)
    with pytest.raises(ValueError):
        accuracy(torch.randn(3, 2), torch.zeros(4, dtype=torch.long))


def test_parameter_count():
    net = nn.Sequential(nn.Conv2d(64, 128, 3), nn.Linear(4, 2))
    assert parameter_count(net) == 73856 + 10
    net[1].requires_grad_(False)
    assert parameter_count(net, trainable_only=True) == 73856
