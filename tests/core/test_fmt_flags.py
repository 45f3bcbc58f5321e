"""kbench.core.fmt.flagged: the rows of a results frame that carry a flag, in either schema's list form."""

import pandas as pd

from kbench.core.fmt import flagged


def test_flagged_reads_lists_and_v1_strings_and_a_frame_without_flags_has_none():
    df = pd.DataFrame({"path": ["a", "b", "c", "d"],
                       "flags": [["contended"], "unstable;contended", [], None]})  # fmt: skip
    assert list(flagged(df, "contended")["path"]) == ["a", "b"]
    assert list(flagged(df, "unstable")["path"]) == ["b"]
    assert flagged(df.drop(columns="flags"), "contended").empty  # not every row: none of them
