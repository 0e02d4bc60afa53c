"""Checks of training: one SGD step, and the loss of a model that has learnt nothing."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from vgg_tutorial.lessons.exercises.common import (
    ExerciseError,
    as_number,
    calling,
    passed,
)


def _training_setup() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """A tiny network with batch normalisation (so train and eval mode differ) and one batch for it."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 4, kernel_size=3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )
        images, labels = torch.randn(8, 3, 8, 8), torch.randint(0, 3, (8,))
        for param in model.parameters():  # what the previous step left behind, unless zero_grad clears it
            param.grad = torch.randn_like(param)
    return model, (images, labels)


def check_training_step(fn: Callable) -> bool:
    """Check ``fn(model, batch, optimizer)``, one step of mini-batch SGD on the cross-entropy loss (§3.1).

    ``batch`` is ``(images, labels)``. The step must put the model in training mode, clear the gradients the
    previous step left, compute ``nn.CrossEntropyLoss`` on the model's logits, back-propagate, update the parameters
    with ``optimizer.step()``, and return the loss as a Python ``float`` (``loss.item()``).
    """
    __tracebackhide__ = True
    lr = 0.1
    model, (images, labels) = _training_setup()
    model.eval()  # a step must switch to training mode itself
    before = [p.detach().clone() for p in model.parameters()]
    stale = [p.grad.clone() for p in model.parameters()]

    reference = copy.deepcopy(model).train()
    loss = nn.functional.cross_entropy(reference(images), labels)
    fresh = torch.autograd.grad(loss, list(reference.parameters()))
    right = [p - lr * g for p, g in zip(before, fresh)]
    no_zero_grad = [p - lr * (g + s) for p, g, s in zip(before, fresh, stale)]

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with torch.random.fork_rng(), calling("your training step"):
        returned = fn(model, (images, labels), optimizer)
    after = [p.detach() for p in model.parameters()]

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(torch.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(a, b))

    if not model.training:
        raise ExerciseError(
            "after your step the model is in evaluation mode: call model.train() at the start of the step, so that "
            "dropout and batch normalisation behave as in training."
        )
    if same(after, before):
        raise ExerciseError(
            "your step did not change the parameters: call loss.backward() and then optimizer.step(), and call "
            "optimizer.zero_grad() before backward, not between backward and step."
        )
    if same(after, no_zero_grad):
        raise ExerciseError(
            "your step added the new gradients to those of the previous step: PyTorch accumulates gradients, so "
            "call optimizer.zero_grad() before loss.backward()."
        )
    if not same(after, right):
        raise ExerciseError(
            "your step changed the parameters, but not as one SGD step on nn.CrossEntropyLoss of the model's "
            "logits would: compute the loss on the raw outputs (no softmax) against the labels, then backward "
            "and step once."
        )
    if isinstance(returned, torch.Tensor):
        raise ExerciseError(
            "your step returns a tensor; return loss.item(), a Python float, so that the graph can be freed and "
            "the number logged."
        )
    if isinstance(returned, float) or type(returned).__module__ == "numpy":
        returned = as_number(returned, "your step")
    if not isinstance(returned, float):
        raise ExerciseError(f"your step returns {type(returned).__name__}; return the loss as a float (loss.item())")
    if abs(returned - loss.item()) > 1e-4 * max(1.0, abs(loss.item())):
        raise ExerciseError(
            f"your step returns {returned:.4f}, but the cross-entropy of this batch before the update is "
            f"{loss.item():.4f}: return the loss you back-propagated."
        )
    return passed(
        "Your training step switches to training mode, clears old gradients, back-propagates, updates the "
        "parameters and returns the loss as a float."
    )


def _chance_loss_slips(num_classes: int) -> dict[float, str]:
    """What typical slips return for ``num_classes`` classes, with the slip, to recognise them in a wrong answer."""
    k = num_classes
    return {
        math.log10(k): "you used log base 10; the cross-entropy uses the natural logarithm (math.log, torch.log)",
        math.log2(k): "you used log base 2 (bits); the cross-entropy uses the natural logarithm (math.log, torch.log)",
        1 / k: "that is the probability each class gets; the loss is −ln of that probability",
        1 - 1 / k: "that is the error rate of guessing, not a loss; the loss is −ln of the probability 1/K",
        -math.log(k): "the sign is wrong: ln(1/K) is negative, and the loss is −ln(1/K) = ln K",
        float(k): "that is the number of classes itself; the loss is −ln(1/K)",
    }


def check_chance_loss(fn: Callable[[int], float]) -> bool:
    """Check ``fn(num_classes)``: the cross-entropy loss of a classifier that predicts the uniform distribution.

    Every class gets probability 1/K, so the loss is −ln(1/K) = ln K for whichever class is right: 2.303 for 10
    classes, 6.908 for the 1,000 classes of ImageNet (§3.1 trains on this loss). A loss stuck at that value means
    the network's outputs do not depend on the image. Tried for K = 10, 2 and 1000.
    """
    __tracebackhide__ = True
    results = {}
    for k in (10, 2, 1000):
        with calling(f"your function on num_classes={k}"):
            got = fn(k)
        got = as_number(got, f"your function on num_classes={k}")
        want = math.log(k)
        if not math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6):
            slip = next((text for value, text in _chance_loss_slips(k).items() if math.isclose(got, value)), "")
            if not slip and results and any(math.isclose(got, math.log(other)) for other in results):
                slip = "it equals the loss for another number of classes: does your function use num_classes?"
            raise ExerciseError(
                f"for {k} classes your chance loss is {got:.4g}, expected ln {k} = {want:.4f}"
                + (f": {slip}." if slip else ".")
            )
        results[k] = got
    return passed(
        f"Your chance loss is ln K: {results[2]:.3f} for 2 classes, {results[10]:.3f} for 10, {results[1000]:.3f} "
        "for 1000. A loss stuck at ln K means the model predicts the same uniform distribution for every image."
    )


def _chance_accuracy_slip(got: float, k: int, top: int) -> str:
    """The usual slip behind a wrong top-``top`` chance accuracy for ``k`` classes, or ""."""
    right = 100 * min(top, k) / k
    if math.isclose(got, right / 100):
        return "that is a fraction; give the accuracy in percent, as the book's tables do"
    if top == 5 and k < 5 and math.isclose(got, 500 / k):
        return f"with {k} classes, the 5 best guesses cover every class: the top-5 accuracy is 100 %"
    if top == 5 and math.isclose(got, 100 / k):
        return "that is the top-1 accuracy; top-5 counts a guess as right when the class is among 5 guesses"
    return ""


def check_chance_level(fn: Callable[[int], tuple]) -> bool:
    """Check ``fn(num_classes)``: ``(loss, top1, top5)`` of a classifier that gives every class the same probability.

    The loss is ln K (as :func:`check_chance_loss` checks); top-1 accuracy is 100/K %, and top-5 accuracy
    100·min(5, K)/K %: with fewer than five classes the five guesses cover them all. Tried for K = 10, 2 and 1000.
    """
    __tracebackhide__ = True
    results = {}
    for k in (10, 2, 1000):
        what = f"your function on num_classes={k}"
        with calling(what):
            got = fn(k)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise ExerciseError(f"{what} returns {got!r:.80}: return three numbers, (loss, top1, top5)")
        loss, top1, top5 = (as_number(value, what) for value in got)
        if not math.isclose(loss, math.log(k), rel_tol=1e-5, abs_tol=1e-6):
            slip = next((text for value, text in _chance_loss_slips(k).items() if math.isclose(loss, value)), "")
            raise ExerciseError(
                f"for {k} classes your chance loss is {loss:.4g}, expected ln {k} = {math.log(k):.4f}"
                + (f": {slip}." if slip else ".")
            )
        for top, value in ((1, top1), (5, top5)):
            want = 100 * min(top, k) / k
            if not math.isclose(value, want, rel_tol=1e-5, abs_tol=1e-6):
                slip = _chance_accuracy_slip(value, k, top)
                raise ExerciseError(
                    f"for {k} classes your top-{top} accuracy is {value:.4g} %, expected {want:.4g} %"
                    + (f": {slip}." if slip else ".")
                )
        results[k] = (loss, top1, top5)
    return passed(
        f"Your chance level: {results[10][0]:.3f} loss, {results[10][1]:g} % top-1, {results[10][2]:g} % top-5 for 10 "
        f"classes; {results[1000][0]:.3f}, {results[1000][1]:g} % and {results[1000][2]:g} % for ImageNet's 1000. "
        "A run that sits there has learnt nothing."
    )
