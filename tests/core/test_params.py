import torch

from landscape.core.models import build_model
from landscape.core.params import StateSpec, flatten_state, model_state, state_checksum, unflatten_state


def test_flatten_roundtrip_with_int_buffers():
    m = build_model("resnet20")
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["bn1.num_batches_tracked"] = torch.tensor(123)
    spec = StateSpec.from_state(state)
    back = unflatten_state(flatten_state(state, spec), spec)
    assert list(back) == list(state)
    for k in state:
        assert back[k].dtype == state[k].dtype and torch.equal(back[k], state[k]), k
    assert spec.numel == sum(v.numel() for v in state.values())
    assert StateSpec.from_json(spec.to_json()) == spec


def test_spec_offsets_by_hand():
    spec = StateSpec(("a", "b", "c"), ((2, 2), (3,), ()), ("float32",) * 3)
    assert spec.offsets == (0, 4, 7, 8) and spec.slice("b") == slice(4, 7)


def test_checksum_sensitive_and_stable():
    m = build_model("lenet5")
    s = model_state(m)
    c = state_checksum(s)
    assert c == state_checksum({k: v.clone() for k, v in s.items()})
    with torch.no_grad():
        m.fc3.bias[0] += 1e-3
    assert state_checksum(model_state(m)) != c
