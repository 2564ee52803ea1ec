"""The course's training loop: a tqdm progress bar, a history, optional live curves.

Deliberately small (one function, ``fit``) so a learner can read all of it: the
lectures explain each line, the exercises never depend on its internals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.core import get_device

Batches = DataLoader | tuple[torch.Tensor, torch.Tensor]


@dataclass
class History:
    """Per-epoch curves: mean training loss and accuracy, validation loss and accuracy, lr."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)


def as_loader(data: Batches, batch_size: int = 64, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Accept a DataLoader or an ``(X, y)`` pair of tensors and return a DataLoader."""
    if isinstance(data, DataLoader):
        return data
    if not (isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)):
        raise ValueError("data must be a DataLoader or an (X, y) pair of tensors")
    X, y = data
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=gen)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose arg-max matches the integer label."""
    if logits.ndim < 2 or logits.shape[0] != y.shape[0]:
        raise ValueError(f"logits (N, K) and labels (N,) expected, got {tuple(logits.shape)} and {tuple(y.shape)}")
    return (logits.argmax(1) == y).float().mean().item()


@torch.no_grad()
def evaluate(
    net: nn.Module, data: Batches, loss_fn: Callable | None = None, device: torch.device | None = None,
    batch_size: int = 256,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` in eval mode over ``data``; restores the previous mode."""
    device = device or next(net.parameters()).device
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    was_training = net.training
    net.eval()
    total_loss, correct, count = 0.0, 0, 0
    for X, y in as_loader(data, batch_size):
        X, y = X.to(device), y.to(device)
        out = net(X)
        total_loss += loss_fn(out, y).item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        count += len(y)
    net.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got no data")
    return total_loss / count, correct / count


@torch.no_grad()
def predict(net: nn.Module, X: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Class predictions of ``net`` (eval mode) for a tensor of inputs."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    preds = [net(X[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(X), batch_size)]
    net.train(was_training)
    return torch.cat(preds)


def fit(
    net: nn.Module,
    train_data: Batches,
    val_data: Batches | None = None,
    num_epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    loss_fn: Callable | None = None,
    weight_decay: float = 0.0,
    device: torch.device | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    progress: bool = True,
    live_plot: bool = False,
) -> History:
    """Train ``net`` for ``num_epochs`` and return its :class:`History`.

    Defaults to Adam and cross-entropy. ``scheduler`` is stepped once per batch (so
    one-cycle and cosine-per-step schedules work). ``transform`` is applied to each
    input batch during training only (augmentation). A tqdm bar shows the running loss;
    ``live_plot=True`` redraws the loss / accuracy curves after every epoch.
    """
    from tqdm.auto import tqdm

    if num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    device = device or get_device()
    net.to(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    optimizer = optimizer or torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loader = as_loader(train_data, batch_size, shuffle=True, seed=seed)
    history = History()
    live = _LivePlot() if live_plot else None
    bar = tqdm(total=num_epochs * len(loader), desc="training", disable=not progress, leave=True)
    for _epoch in range(num_epochs):
        net.train()
        total_loss, correct, count = 0.0, 0, 0
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            if transform is not None:
                X = transform(X)
            out = net(X)
            loss = loss_fn(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total_loss += loss.item() * len(y)
            if out.ndim == 2:
                correct += (out.argmax(1) == y).sum().item()
            count += len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        history.train_loss.append(total_loss / count)
        history.train_acc.append(correct / count)
        history.lr.append(optimizer.param_groups[0]["lr"])
        if val_data is not None:
            vl, va = evaluate(net, val_data, loss_fn, device)
            history.val_loss.append(vl)
            history.val_acc.append(va)
            bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", val_acc=f"{va:.3f}")
        if live is not None:
            live.update(history)
    bar.close()
    if live is not None:
        live.close()
    return history


class _LivePlot:
    """Redraws the history in one notebook output area after every epoch."""

    def __init__(self) -> None:
        from IPython.display import display

        self._handle = display(None, display_id=True)

    def update(self, history: History) -> None:
        import matplotlib.pyplot as plt

        from cnnlab.plot import plot_history

        fig = plot_history(history)
        if self._handle is not None:
            self._handle.update(fig)
        plt.close(fig)

    def close(self) -> None:
        pass


def parameter_count(net: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``net`` (only those with ``requires_grad`` if asked)."""
    params: Iterable[torch.Tensor] = net.parameters()
    return sum(p.numel() for p in params if p.requires_grad or not trainable_only)
