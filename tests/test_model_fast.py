"""The fast (task-stacked, channels-last) MTAN computes the same function as the plain per-task loop."""

import copy

import pytest
import torch

from mtan import MTAN
from mtan.reference import reference_forward, task_batch_norm
from mtan.stacking import batch_norm_per_task

TASK_SETS = [{"segmentation": 7, "depth": 1}, {"segmentation": 13, "depth": 1, "normal": 3}]


def twin_models(tasks, backbone, dtype=torch.float64):
    torch.manual_seed(0)
    model = MTAN(tasks, backbone=backbone, width=0.0625).to(dtype)
    return model, copy.deepcopy(model)


def loss_of(outputs):
    # A loss that weighs every output element differently, so every gradient path is exercised.
    return sum(
        (o * torch.linspace(-1, 2, o.numel(), dtype=o.dtype).view_as(o)).square().mean() for o in outputs
    )


def assert_gradients_close(fast, reference, rtol):
    # Conv biases in front of a training-mode batch norm have a true gradient of 0 (the norm removes any
    # constant), so their computed gradients are rounding noise: compare on the scale of all gradients.
    scale = max(p.grad.abs().max().item() for p in reference.parameters())
    for (name, p), q in zip(fast.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=rtol * scale, msg=name)


def assert_float64_twins_agree(fast, reference, fast_out, reference_out):
    """Outputs, gradients of a loss of them, and batch norm running statistics (including those of the
    shared attention convs, updated once per task) agree to float64 rounding."""
    assert list(fast_out) == list(reference_out)
    for task in fast_out:
        torch.testing.assert_close(fast_out[task], reference_out[task], rtol=1e-10, atol=1e-12)
    loss_of(fast_out.values()).backward()
    loss_of(reference_out.values()).backward()
    assert_gradients_close(fast, reference, rtol=1e-9)
    for (name, b), c in zip(fast.named_buffers(), reference.buffers(), strict=True):
        if "running" in name:
            torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-14, msg=name)


@pytest.mark.parametrize("backbone", ["segnet", "segnet-basic"])
@pytest.mark.parametrize("tasks", TASK_SETS, ids=["2 tasks", "3 tasks"])
def test_outputs_gradients_and_running_statistics_match_the_per_task_loop(tasks, backbone):
    fast, reference = twin_models(tasks, backbone)
    x = torch.rand(3, 3, 64, 96, dtype=torch.float64)

    fast_out, reference_out = fast(x), reference_forward(reference, x)
    assert list(fast_out) == list(tasks)
    assert_float64_twins_agree(fast, reference, fast_out, reference_out)

    fast.eval()
    reference.eval()
    x = torch.rand(2, 3, 64, 96, dtype=torch.float64)
    fast_out, reference_out = fast(x), reference_forward(reference, x)
    for task in tasks:
        torch.testing.assert_close(fast_out[task], reference_out[task], rtol=1e-10, atol=1e-12)


def test_float32_channels_last_matches_the_per_task_loop_within_rounding():
    # The real training path: float32, channels-last, grouped convs. (The float64 tests above check the
    # math; here the two orders of float32 computation may differ by rounding only.)
    fast, reference = twin_models(TASK_SETS[0], "segnet", torch.float32)
    x = torch.rand(4, 3, 64, 128)
    fast_out, reference_out = fast(x), reference_forward(reference, x)
    for task, out in fast_out.items():
        assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
        scale = reference_out[task].abs().max().item()
        torch.testing.assert_close(out, reference_out[task], rtol=0, atol=1e-5 * scale)
    loss_of(fast_out.values()).backward()
    loss_of(reference_out.values()).backward()
    assert_gradients_close(fast, reference, rtol=1e-4)


@pytest.mark.parametrize("shared", [True, False], ids=["shared parameters", "per-task parameters"])
def test_per_task_batch_norm_equals_one_call_per_task(shared):
    torch.manual_seed(0)
    tasks, channels = 3, 4
    bn = torch.nn.BatchNorm2d(channels if shared else tasks * channels, momentum=0.3).double()
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    sequential = copy.deepcopy(bn)
    x = torch.randn(tasks * 5, channels, 6, 7, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last
    )
    x.requires_grad_()
    out = batch_norm_per_task(bn, x, tasks)
    if shared:  # the module itself, called once per task
        expected = torch.cat([sequential(block) for block in x.chunk(tasks)])
    else:  # task t's slice of the parameters and running statistics
        expected = torch.cat(
            [task_batch_norm(sequential, t, tasks, block) for t, block in enumerate(x.chunk(tasks))]
        )
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(bn.running_mean, sequential.running_mean)
    torch.testing.assert_close(bn.running_var, sequential.running_var)
    weights = torch.rand_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, bn.weight, bn.bias])
    expected_grads = torch.autograd.grad((expected * weights).sum(), [x, sequential.weight, sequential.bias])
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)


def test_xavier_init_of_stacked_convs_uses_each_tasks_own_fan_out():
    torch.manual_seed(0)
    model = MTAN({"a": 64, "b": 64, "c": 64, "d": 64}, width=1.0)
    conv = model.head_conv  # four 3x3 convs 64 -> 64 stacked: 256 outputs
    assert conv.weight.shape == (256, 64, 3, 3)
    fan = 64 * 9
    assert conv.weight.std().item() == pytest.approx((2 / (fan + fan)) ** 0.5, rel=0.02)


def test_under_torch_compile_it_computes_the_same_function():
    # torch.compile cannot trace the in-place native calls, so the fast network switches to plain
    # per-task ops there (what a GPU run with --compile uses); aot_eager traces it without code generation.
    fast, reference = twin_models(TASK_SETS[0], "segnet")
    x = torch.rand(2, 3, 32, 64, dtype=torch.float64)
    fast_out = torch.compile(fast, backend="aot_eager", fullgraph=True)(x)
    reference_out = reference_forward(reference, x)
    assert_float64_twins_agree(fast, reference, fast_out, reference_out)


def test_under_bf16_autocast_it_matches_the_per_task_loop_under_autocast():
    # Both deviate from float32 alike (bf16 batch norm over a tiny batch); they agree with each other.
    fast, reference = twin_models(TASK_SETS[0], "segnet", torch.float32)
    x = torch.rand(2, 3, 32, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast_out = fast(x)
        reference_out = reference_forward(reference, x)
    for task, out in fast_out.items():
        assert out.dtype == torch.bfloat16
        scale = reference_out[task].abs().max().item()
        torch.testing.assert_close(out.float(), reference_out[task].float(), rtol=0, atol=0.03 * scale)
    loss_of([o.float() for o in fast_out.values()]).backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in fast.parameters())
