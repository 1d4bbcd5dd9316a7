"""Measured latency: how a net runs on the user's own device, not only what it costs in FLOPs.

`setting` (what a latency is measured under), `timing` (timing in a fresh process: warm-up, synchronised
repeats, the median with its interval), `parts` (a net as the parts a lookup table times), `meter`
(measured at most once, kept in the storage; the table's prediction; the search's latency limit).
"""
