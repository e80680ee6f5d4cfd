"""MATLAB-style parameter groups, and the setters that keep them on a fitted net.

The paper's recipe trains the new last layer 20x faster than the rest and puts
no L2 on biases. Each parameter group carries two tags (``leukosk_head``,
``leukosk_decay``) from which its learning rate and weight decay follow;
:func:`register_group_setters` makes ``set_params(lr=...)``,
``set_params(optimizer__weight_decay=...)`` and
``set_params(head_lr_multiplier=...)`` on a fitted net update every group by
those rules, instead of skorch's default of one value for all groups.
"""

import inspect

from ..nn._vgg import HEAD_PREFIX

__all__ = ["param_groups", "register_group_setters", "optimizer_kwargs"]

_HEAD, _DECAY = "leukosk_head", "leukosk_decay"


def _accepts(func, name):
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True


def optimizer_kwargs(net):
    """The optimizer's keyword arguments; ``momentum`` only where it exists."""
    _, kwargs = net.get_params_for_optimizer("optimizer", [])
    if not _accepts(net.optimizer, "momentum"):
        kwargs.pop("momentum", None)  # the SGD default; Adam & co. have none
    return kwargs


def _group_values(net, head, decay, lr, weight_decay):
    return {"lr": lr * net.head_lr_multiplier if head else lr,
            "weight_decay": weight_decay if decay else 0.0}


def param_groups(net, named_params, lr, weight_decay):
    """Groups by (head, decay): head at ``lr * head_lr_multiplier``; no L2 on
    biases and batch-norm weights (1-D tensors)."""
    groups = {}
    for name, param in named_params:
        if not param.requires_grad:
            continue
        head, decay = name.startswith(HEAD_PREFIX), param.ndim > 1
        group = groups.setdefault((head, decay), {
            "params": [], _HEAD: head, _DECAY: decay,
            **_group_values(net, head, decay, lr, weight_decay)})
        group["params"].append(param)
    return list(groups.values())


def _set_group_param(net, param, value):
    """Virtual-parameter setter: store the parameter, then re-derive every
    group's learning rate and weight decay from the rules."""
    if param in ("lr", "optimizer__lr"):
        net.lr = value
        vars(net).pop("optimizer__lr", None)
    else:
        setattr(net, param, value)
    kwargs = optimizer_kwargs(net)
    lr, weight_decay = kwargs.get("lr", net.lr), kwargs.get("weight_decay", 0.0)
    for group in net.optimizer_.param_groups:
        if _HEAD in group:
            group.update(_group_values(net, group[_HEAD], group[_DECAY], lr,
                                       weight_decay))


def register_group_setters(net):
    """Route the parameters that shape the groups through the rules above."""
    net._register_virtual_param(
        ["lr", "optimizer__lr", "optimizer__weight_decay", "head_lr_multiplier"],
        _set_group_param)
