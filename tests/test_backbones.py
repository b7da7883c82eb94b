"""Tests of backbone/resnet18.py and backbone/mlp.py (docs/method.md, "Setting and protocol")."""
import math

import pytest
import torch
from torch import nn

from backbone.mlp import MLP
from backbone.resnet18 import ResNet18

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return ResNet18(10)


def _convs(net: nn.Module) -> list[nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


def test_resnet18_output_shape(resnet):
    out = resnet(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


def test_resnet18_classifier_is_one_bias_free_linear(resnet):
    linears = [m for m in resnet.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1, "HCR never uses extra heads; only the 512 -> 10 classifier"
    (head,) = linears
    assert (head.in_features, head.out_features) == (512, 10)
    assert head.bias is None


def test_resnet18_every_parameter_gets_a_gradient(resnet):
    resnet.train()
    resnet.zero_grad(set_to_none=True)
    logits = resnet(torch.randn(4, 3, 32, 32))
    nn.functional.cross_entropy(logits, torch.tensor([0, 3, 7, 9])).backward()
    unused = [name for name, p in resnet.named_parameters() if p.grad is None]
    assert unused == []
    assert all(torch.isfinite(p.grad).all() for p in resnet.parameters())
    resnet.zero_grad(set_to_none=True)


def test_resnet18_stem_and_no_max_pool(resnet):
    stem = _convs(resnet)[0]
    assert (stem.in_channels, stem.out_channels) == (3, 64)
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.padding == (1, 1)
    assert stem.bias is None
    assert not any(isinstance(m, nn.MaxPool2d | nn.AvgPool2d) for m in resnet.modules())


def test_resnet18_block_structure(resnet):
    """17 3x3 convolutions (stem + 8 blocks x 2) and 3 1x1 projections; the outputs of the
    3x3 convolutions are 64x32x32 (stem and the 4 of stage 1), then 4 each of 128x16x16,
    256x8x8 and 512x4x4: 2 blocks per stage, and no down-sampling before the second stage
    (no max-pool in any form)."""
    convs = _convs(resnet)
    assert sum(c.kernel_size == (3, 3) for c in convs) == 17
    assert sum(c.kernel_size == (1, 1) for c in convs) == 3
    assert len(convs) == 20
    # feature maps after every residual block: hook each conv with 3x3 kernel and record its output
    shapes = []
    hooks = [c.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
             for c in convs if c.kernel_size == (3, 3)]
    resnet.eval()
    with torch.no_grad():
        resnet(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    expected = [(64, 32, 32)] + [(64, 32, 32)] * 4 + [(128, 16, 16)] * 4 + [(256, 8, 8)] * 4 + [(512, 4, 4)] * 4
    assert shapes == expected


def test_resnet18_parameter_count(resnet):
    """Count written out from the architecture (conv weights, BN weight + bias, no biases)."""
    def conv(cin, cout, k):
        return cin * cout * k * k

    def bn(c):
        return 2 * c

    def block(cin, cout):
        n = conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
        if cin != cout:
            n += conv(cin, cout, 1) + bn(cout)
        return n

    total = conv(3, 64, 3) + bn(64)
    for cin, cout in ((64, 64), (64, 128), (128, 256), (256, 512)):
        total += block(cin, cout) + block(cout, cout)
    total += 512 * 10  # classifier, no bias
    assert total == 11_173_952
    assert sum(p.numel() for p in resnet.parameters()) == total


def test_mlp_shape_and_layers():
    net = MLP(784, 10)
    out = net(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 10)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 100), (100, 100), (100, 10)]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 2
    assert sum(p.numel() for p in net.parameters()) == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10


def test_mlp_computes_relu_network():
    """Forward pass recomputed by hand from the weights: W3 relu(W2 relu(W1 x + b1) + b2) + b3."""
    torch.manual_seed(1)
    net = MLP(784, 10)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.bias.uniform_(-0.5, 0.5)  # non-zero biases, so that they are checked too
    x = torch.rand(4, 1, 28, 28) - 0.5
    w1, w2, w3 = (m for m in net.modules() if isinstance(m, nn.Linear))
    h = x.reshape(4, 784).double()
    h = (h @ w1.weight.double().T + w1.bias.double()).clamp(min=0)
    h = (h @ w2.weight.double().T + w2.bias.double()).clamp(min=0)
    expected = h @ w3.weight.double().T + w3.bias.double()
    torch.testing.assert_close(net(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_mlp_initialisation():
    """Xavier-uniform weights (bound sqrt(6 / (fan_in + fan_out))) and zero biases."""
    torch.manual_seed(2)
    net = MLP(784, 10)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            bound = math.sqrt(6.0 / (m.in_features + m.out_features))
            assert m.weight.abs().max() <= bound
            assert m.weight.abs().max() > 0.9 * bound  # spread over the whole range
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
