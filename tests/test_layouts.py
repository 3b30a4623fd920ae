"""Keypoint layouts: the packaged facts equal ../shared/keypoints.json and are internally consistent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labeltool.layouts import (
    COCO17,
    HALPE26,
    HALPE136,
    LAYOUTS,
    PART_NAMES,
    WHOLEBODY133,
    halpe136_to_coco133_index,
    layout_for,
)

ALL = [COCO17, HALPE26, WHOLEBODY133, HALPE136]
IDS = [layout.name for layout in ALL]


def _swap_side(name: str) -> str:
    if name.startswith("left"):
        return "right" + name[4:]
    if name.startswith("right"):
        return "left" + name[5:]
    return name


def _ibug68_mirror() -> np.ndarray:
    """Mirror of the 68 iBUG-300W points, written from the iBUG annotation scheme."""
    m = np.arange(68)
    m[0:17] = 16 - np.arange(0, 17)  # jaw
    m[17:27] = 43 - np.arange(17, 27)  # brows
    m[31:36] = 66 - np.arange(31, 36)  # nostrils
    for a, b in [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]:  # eyes
        m[a], m[b] = b, a
    m[48:55] = 102 - np.arange(48, 55)  # outer lip, upper
    m[55:60] = 114 - np.arange(55, 60)  # outer lip, lower
    m[60:65] = 124 - np.arange(60, 65)  # inner lip, upper
    m[65:68] = 132 - np.arange(65, 68)  # inner lip, lower
    return m


@pytest.fixture(scope="module")
def shared(shared_keypoints):
    return json.loads(shared_keypoints.read_text())


@pytest.mark.parametrize(
    "layout, key",
    [(WHOLEBODY133, "coco_wholebody"), (HALPE136, "halpe136"), (HALPE26, "halpe26")],
    ids=["133", "136", "26"],
)
def test_layout_equals_shared_keypoints(shared, layout, key):
    ref = shared[key]
    assert list(layout.names) == ref["names"]
    flip = np.arange(len(ref["names"]))
    for a, b in ref["flip_pairs"]:
        flip[a], flip[b] = b, a
    np.testing.assert_array_equal(layout.flip_index, flip)
    np.testing.assert_array_equal(layout.skeleton, np.asarray(ref["skeleton"]))
    np.testing.assert_array_equal(layout.sigmas, np.asarray(ref["sigmas"]))
    if "parts" in ref:
        assert {p: [int(i[0]), int(i[-1]) + 1] for p, i in layout.parts.items()} == ref["parts"]


def test_coco17_is_the_wholebody_body(shared):
    ref = shared["coco_wholebody"]
    assert list(COCO17.names) == ref["names"][:17]
    np.testing.assert_array_equal(COCO17.sigmas, np.asarray(ref["sigmas"][:17]))
    np.testing.assert_array_equal(COCO17.flip_index, WHOLEBODY133.flip_index[:17])


def test_index_map_equals_shared(shared):
    halpe, coco = halpe136_to_coco133_index()
    np.testing.assert_array_equal(np.stack([halpe, coco], axis=1), np.asarray(shared["halpe136_to_coco133"]["pairs"]))
    assert sorted(set(range(136)) - set(halpe.tolist())) == shared["halpe136_to_coco133"]["dropped_halpe"]


@pytest.mark.parametrize("layout", ALL, ids=IDS)
def test_flip_is_an_involution_that_swaps_sides(layout):
    flip = layout.flip_index
    assert flip.shape == (layout.num_keypoints,)
    np.testing.assert_array_equal(flip[flip], np.arange(layout.num_keypoints))
    part_of = layout.part_of()
    for i, j in enumerate(flip):
        name, other = layout.names[i], layout.names[j]
        if name.startswith(("left", "right")):
            assert other == _swap_side(name), (name, other)
        else:
            assert not other.startswith(("left", "right")), (name, other)
        # flipping keeps a point in its part, except the hands which swap
        expected = {"lefthand": "righthand", "righthand": "lefthand"}.get(part_of[i], part_of[i])
        assert part_of[j] == expected


@pytest.mark.parametrize("layout", [WHOLEBODY133, HALPE136], ids=["133", "136"])
def test_face_flip_is_the_ibug_mirror(layout):
    face = layout.parts["face"]
    assert len(face) == 68
    np.testing.assert_array_equal(layout.flip_index[face] - face[0], _ibug68_mirror())


@pytest.mark.parametrize("layout", ALL, ids=IDS)
def test_links_in_range_and_not_degenerate(layout):
    links = layout.skeleton
    assert links.ndim == 2 and links.shape[1] == 2 and len(links) > 0
    assert links.min() >= 0 and links.max() < layout.num_keypoints
    assert (links[:, 0] != links[:, 1]).all()
    assert len({tuple(sorted(pair)) for pair in links.tolist()}) == len(links)


@pytest.mark.parametrize("layout", ALL, ids=IDS)
def test_parts_partition_the_layout(layout):
    assert set(layout.parts) <= set(PART_NAMES)
    assert "body" in layout.parts
    joined = np.sort(np.concatenate(list(layout.parts.values())))
    np.testing.assert_array_equal(joined, np.arange(layout.num_keypoints))


@pytest.mark.parametrize("layout", ALL, ids=IDS)
def test_sigmas_positive_one_per_point(layout):
    assert layout.sigmas.shape == (layout.num_keypoints,)
    assert (layout.sigmas > 0).all() and (layout.sigmas < 0.2).all()
    if layout is WHOLEBODY133:
        # The official COCO-WholeBody sigmas are not mirror-symmetric (feet, face): kept as published.
        np.testing.assert_array_equal(layout.sigmas[17:23], [0.068, 0.066, 0.066, 0.092, 0.094, 0.094])
        np.testing.assert_array_equal(layout.sigmas[:17], layout.sigmas[layout.flip_index[:17]])
    else:  # a point and its mirror share a sigma
        np.testing.assert_array_equal(layout.sigmas, layout.sigmas[layout.flip_index])


def test_known_part_sizes_and_halpe_feet():
    assert {p: len(i) for p, i in WHOLEBODY133.parts.items()} == {
        "body": 17,
        "foot": 6,
        "face": 68,
        "lefthand": 21,
        "righthand": 21,
    }
    assert {p: len(i) for p, i in HALPE136.parts.items()} == {
        "body": 20,
        "foot": 6,
        "face": 68,
        "lefthand": 21,
        "righthand": 21,
    }
    assert list(HALPE26.names) == list(HALPE136.names[:26])
    assert WHOLEBODY133.names[17:23] == (
        "left_big_toe",
        "left_small_toe",
        "left_heel",
        "right_big_toe",
        "right_small_toe",
        "right_heel",
    )
    assert HALPE136.names[17:26] == (
        "head",
        "neck",
        "hip",
        "left_big_toe",
        "right_big_toe",
        "left_small_toe",
        "right_small_toe",
        "left_heel",
        "right_heel",
    )


def test_halpe_to_133_map_is_a_bijection_with_matching_names():
    halpe, coco = halpe136_to_coco133_index()
    assert len(halpe) == 133
    np.testing.assert_array_equal(np.sort(coco), np.arange(133))
    assert len(np.unique(halpe)) == 133 and halpe.max() < 136
    assert sorted(set(range(136)) - set(halpe.tolist())) == [17, 18, 19]  # head, neck, hip
    for a, b in zip(halpe, coco):
        assert HALPE136.names[a] == WHOLEBODY133.names[b]
    # the feet are re-ordered, not copied in place (AlphaPose's copier gets this wrong)
    feet = {int(a): int(b) for a, b in zip(halpe, coco) if 20 <= a < 26}
    assert feet == {20: 17, 22: 18, 24: 19, 21: 20, 23: 21, 25: 22}


def test_layout_for():
    assert {k: layout_for(k) for k in (17, 26, 133, 136)} == LAYOUTS
    with pytest.raises(ValueError, match="68"):
        layout_for(68)
    assert WHOLEBODY133.index("right_heel") == 22
    assert HALPE136.index("right_heel") == 25
