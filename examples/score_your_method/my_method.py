"""Gradient squared: an attribution method of your own, scored against BAM with `bamkit score`."""

import torch


def gradient_squared(model, inputs, target):
    """(N,C,H,W) normalised inputs, (N,) target classes -> (N,C,H,W) attributions: (∂ logit_target / ∂x)²."""
    x = inputs.clone().requires_grad_(True)
    logit = model(x).gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(logit, x)
    return grad**2
