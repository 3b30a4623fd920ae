"""Golden labels: the real sample distils to exactly the stored labels on the locked stack (issue 19).

Any change (code, teacher, rule, or a package the lock moved) fails with a per-part diff and the AP
change. A deliberate change regenerates the golden: ``python tests/golden_labels.py --write``
(docs/install.md, "The lock"). Off the lock the labels may differ, so the test skips, naming the
packages; CI installs from the lock (./install.sh --test), so it runs there.
"""

from __future__ import annotations

import copy
import json

import pytest
from golden_labels import GOLDEN, accepted_counts, diff, record_now

from labeltool.versions import off_lock


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def test_diff_names_the_part_the_persons_and_the_ap_change(golden):
    """The failure message of the golden test, on a known change (no distil needed)."""
    now = copy.deepcopy(golden)
    pid = next(iter(now["persons"]))
    face = now["persons"][pid]["face"]
    face["accepted"] = not face["accepted"]
    hand_pid = next(p for p, rec in now["persons"].items() if rec["righthand"]["accepted"])
    hand = now["persons"][hand_pid]["righthand"]["points"]
    k = next(i for i, pt in enumerate(hand) if pt[2] > 0)
    hand[k][0] += 1.5
    now["ap"]["face"] = round(golden["ap"]["face"] - 0.05, 4)
    lines = diff(golden, now)
    assert len(lines) == 2
    was, became = ("yes", "no") if golden["persons"][pid]["face"]["accepted"] else ("no", "yes")
    assert lines[0] == (f"face: accepted changed ['{pid}:{was}->{became}']; points changed for 0 persons "
                        f"(largest shift of a point labelled in both 0.00 px); AP {golden['ap']['face']} -> {now['ap']['face']}")  # fmt: skip
    assert lines[1].startswith("righthand: accepted changed nowhere; points changed for 1 persons (largest shift of a point labelled in both 1.50 px)")
    assert diff(golden, golden) == []


@pytest.mark.slow
def test_real_sample_distils_to_the_golden_labels(realdata, golden):
    differ = off_lock()
    if differ:
        pytest.skip("the golden holds the locked stack's labels; installed here: "
                    + ", ".join(f"{n} {have} (lock {want})" for n, have, want in differ))  # fmt: skip
    now = record_now(realdata / "coco_wholebody")
    lines = diff(golden, now)
    assert not lines, ("the labels of the real sample changed:\n" + "\n".join(lines)
                       + f"\naccepted now {accepted_counts(now)}, golden {accepted_counts(golden)}"
                       + "\nif the change is deliberate: python tests/golden_labels.py --write")  # fmt: skip
