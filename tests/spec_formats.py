"""The SPEC section 2 target formats as strict regexes, shared by the data-engine tests (the
rewards module parses completions leniently; these check that our own targets are exact)."""

import re

LOR = re.compile(r"<think>(.+?)</think>\n<answer>(.+?)</answer>", re.S)
DTR = re.compile(
    r"<detect>Find (\d+) relevant objects?:((?:\n<3d_box center=\"[^\"]+\">[^<]+</3d_box>)*)</detect>\n"
    r"<think>(.+?)</think>\n<answer>(.+?)</answer>",
    re.S,
)
BOX = re.compile(
    r"<3d_box center=\"(-?\d+\.\d\d),(-?\d+\.\d\d),(-?\d+\.\d\d)\">([^<(]+) \(([^)]+)\)</3d_box>"
)
