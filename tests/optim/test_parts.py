"""A bucket cut into its repeated layers (optim/_parts.py), which the generated kernel compiles once.

The expectations are worked out by hand from the layouts (a GPT-style transformer's parameter list, a
stack of equal tensors); the property test checks what the kernel relies on for any layout: every tensor
in exactly one part, and the parts after the rest all of one layer's keys, so a compiled entry serves them.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

import descentlab.optim as dl
from descentlab.optim._bucket import Bucket
from descentlab.optim._parts import ELEMENTWISE_PART, REDUCING_PART, repeated_parts


def transformer(layers: int) -> list[tuple[int, ...]]:
    """Token and position embeddings, ``layers`` blocks of 12 tensors, the final norm's two."""
    width = 32
    block = [(width,), (width,), (3 * width, width), (3 * width,), (width, width), (width,)]
    block += [(width,), (width,), (4 * width, width), (4 * width,), (width, 4 * width), (width,)]
    return [(500, width), (64, width), *block * layers, (width,), (width,)]


def test_a_transformer_is_cut_into_its_blocks_with_the_embeddings_and_final_norm_first():
    parts = repeated_parts(transformer(16), REDUCING_PART)
    assert parts[0] == (0, 1, 194, 195)
    assert parts[1:] == tuple(tuple(range(2 + 12 * layer, 14 + 12 * layer)) for layer in range(16))


def test_an_elementwise_chain_cuts_only_models_deep_enough_for_two_parts_of_its_minimum():
    # 8 blocks of 12 tensors are one part and a bit at 64 tensors (6 blocks) a part: not worth a call.
    assert repeated_parts(transformer(8), ELEMENTWISE_PART) == (tuple(range(100)),)
    # 16 blocks: two parts of 8 blocks, since 6 does not divide 16 (so no third entry of 4 blocks).
    assert [len(part) for part in repeated_parts(transformer(16), ELEMENTWISE_PART)] == [4, 96, 96]
    # 48 blocks: parts of 6 blocks; 13 (a prime): 6, 6 and the one left over.
    assert [len(part) for part in repeated_parts(transformer(48), ELEMENTWISE_PART)] == [4, *[72] * 8]
    assert [len(part) for part in repeated_parts(transformer(13), ELEMENTWISE_PART)] == [4, 72, 72, 12]


def test_equal_tensors_in_a_row_are_equal_parts_of_at_least_the_minimum_where_a_count_divides():
    assert repeated_parts([(5,)] * 20, 8) == (tuple(range(10)), tuple(range(10, 20)))
    # 19 has no divisor from 8 to 15: parts of the minimum, and what is left over.
    assert repeated_parts([(5,)] * 19, 8) == (tuple(range(8)), tuple(range(8, 16)), tuple(range(16, 19)))


def test_a_model_without_repeated_layers_is_one_part():
    assert repeated_parts([(index + 1,) for index in range(40)], 8) == (tuple(range(40)),)
    # A repeat that saves compiling under a quarter of the tensors is not worth the calls either.
    assert repeated_parts([(index + 1,) for index in range(60)] + [(7, 7)] * 20, 8) == (tuple(range(80)),)


@given(st.lists(st.sampled_from([(1,), (2,), (3, 3), (4,)]), max_size=120), st.integers(1, 40))
def test_parts_cover_each_tensor_once_and_layer_parts_of_one_size_repeat_one_layout(keys, minimum):
    parts = repeated_parts(keys, minimum)
    assert sorted(index for part in parts for index in part) == list(range(len(keys)))
    # The parts between the first (the rest, or a layer part) and the last (maybe fewer layers) are full.
    layouts = [tuple(keys[index] for index in part) for part in parts]
    middle = layouts[1:-1]
    assert len(set(middle)) <= 1
    if middle:
        assert middle[0][: len(layouts[-1])] == layouts[-1]


def _layered(optimizer_class: type, **options: object) -> tuple[torch.optim.Optimizer, Bucket]:
    params = [torch.zeros(500, 32), *[torch.zeros(shape) for shape in transformer(4)[2:-2]]]
    optimizer = optimizer_class([{"params": params, "compiled": True}], **options)
    bucket = Bucket()
    bucket.params = params
    return optimizer, bucket


def test_a_chain_whose_test_spans_the_group_is_cut_into_layers():
    # SWATS's paper variant tests the switch on dot products over the whole group: each part's call returns
    # its sums (UpdateSums), finished on the host, so it is cut into layers, as the per-tensor variant and
    # LAMB (reductions in the kernel: one layer a call).
    for optimizer, bucket in (
        _layered(dl.SWATS),
        _layered(dl.SWATS, variant="per-tensor"),
        _layered(dl.LAMB),
    ):
        assert len(optimizer._kernel_parts(optimizer.param_groups[0], bucket)) == 5


def test_a_part_holds_the_tensors_at_its_indices_and_the_whole_is_the_bucket_itself():
    bucket = Bucket()
    bucket.params = [torch.full((2,), float(i)) for i in range(5)]
    bucket.grads = [param + 10 for param in bucket.params]
    bucket.state["exp_avg"] = [param + 20 for param in bucket.params]
    for indices in ((3,), (0, 2, 4), (4, 1)):
        part = bucket.part(indices)
        assert part.part_of == 5
        for mine, whole in ((part.params, bucket.params), (part.grads, bucket.grads)):
            assert type(mine) is list and all(a is whole[i] for a, i in zip(mine, indices, strict=True))
        moments = zip(part.state["exp_avg"], indices, strict=True)
        assert all(a is bucket.state["exp_avg"][i] for a, i in moments)
    assert bucket.part(tuple(range(5))) is bucket


def test_a_planned_group_cuts_its_bucket_into_parts_once_and_again_after_a_new_plan(monkeypatch):
    # The parts are derived from the bucket's layout; the buckets a BucketPlan hands out share one cache,
    # so the layout is read once per plan, and a new plan (here: state cleared) reads it again. (No kernel
    # runs: the bucketing and the cutting are the engine's, before any call.)
    import descentlab.optim._engine as engine

    calls = []
    monkeypatch.setattr(engine, "repeated_parts", lambda keys, minimum: calls.append(keys) or ((0,),))
    optimizer, _ = _layered(dl.Adam)
    group = optimizer.param_groups[0]
    for param in group["params"]:
        param.grad = torch.ones_like(param)
    for _ in range(3):
        (bucket,) = optimizer._buckets(group, generated=True).values()
        assert optimizer._kernel_parts(group, bucket) == ((0,),)
        torch._foreach_add_(bucket.counts, 1)  # what the kernel does (the plan checks the counts moved)
    assert len(calls) == 1
    optimizer.state.clear()
    for _ in range(2):
        (bucket,) = optimizer._buckets(group, generated=True).values()
        optimizer._kernel_parts(group, bucket)
        torch._foreach_add_(bucket.counts, 1)
    assert len(calls) == 2


def test_a_kernel_that_also_updates_averages_is_called_in_smaller_parts():
    # WeightAveraging's averages fused into the update add a fifth list to each call; its parts hold at
    # least AVERAGING_PART tensors (8 blocks of 12: two parts of 4 blocks, after the other tensors), where
    # the update alone needs 64 and takes the 100 tensors in one call.
    params = [torch.zeros(shape) for shape in transformer(8)]
    optimizer = dl.Adam([{"params": params, "compiled": True}])
    bucket = Bucket()
    bucket.params = params
    group = optimizer.param_groups[0]
    assert len(optimizer._kernel_parts(group, bucket)) == 1
    rest, *layers = optimizer._kernel_parts(group, bucket, averaged=True)
    assert rest == (0, 1, 98, 99) and [len(part) for part in layers] == [48, 48]
