"""Test-set evaluation: loss, accuracy, per-class accuracy, confusion matrix, sample predictions."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from .events import EvaluationEnded, PredictionSample

EVAL_BATCH = 1024
SAMPLES_ON_DIAGONAL = 4  # correct predictions kept per class
SAMPLES_OFF_DIAGONAL = 3  # mistakes kept per (true, predicted) cell


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float] | tuple[None, None]:
    """Mean cross-entropy and accuracy in percent, summed on the device and read once."""
    if len(y) == 0:
        return None, None
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=y.device)
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    for start in range(0, len(y), EVAL_BATCH):
        logits = model(x[start:start + EVAL_BATCH])
        target = y[start:start + EVAL_BATCH]
        loss_sum += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    return loss_sum.item() / len(y), 100.0 * correct.item() / len(y)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: list[str],
             images: torch.Tensor | None = None, weights_epoch: int | None = None) -> EvaluationEnded:
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    k = len(classes)
    losses, preds, confs = [], [], []
    for start in range(0, len(y), EVAL_BATCH):
        logits = model(x[start:start + EVAL_BATCH])
        losses.append(F.cross_entropy(logits, y[start:start + EVAL_BATCH], reduction="none"))
        prob, pred = logits.softmax(1).max(1)
        preds.append(pred)
        confs.append(prob)
    model.train(was_training)
    loss = torch.cat(losses).cpu()
    pred = torch.cat(preds).cpu()
    conf = torch.cat(confs).float().cpu()
    true = y.cpu()

    confusion = torch.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    per_class_total = confusion.sum(1).clamp_min(1)
    per_class_acc = (100.0 * confusion.diag() / per_class_total).tolist()
    test_acc = 100.0 * (pred == true).float().mean().item() if len(true) else 0.0

    samples: list[PredictionSample] = []
    if images is not None:
        for t in range(k):
            for p in range(k):
                limit = SAMPLES_ON_DIAGONAL if t == p else SAMPLES_OFF_DIAGONAL
                for i in torch.nonzero((true == t) & (pred == p)).flatten()[:limit].tolist():
                    samples.append(PredictionSample(i, images[i].tolist(), t, p, round(conf[i].item(), 4)))
    return EvaluationEnded(
        test_loss=loss.mean().item() if len(loss) else 0.0,
        test_acc=test_acc,
        per_class_acc=per_class_acc,
        confusion=confusion.tolist(),
        classes=list(classes),
        samples=samples,
        seconds=time.perf_counter() - started,
        weights_epoch=weights_epoch,
    )
