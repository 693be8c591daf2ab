"""The lab: installations of any release at any scale, a host farm, and probes.

    farm.py          one process serving thousands of simulated hosts (agent + SSH endpoints)
    probes.py        MN API availability and VM continuity, sampled during an operation
    installation.py  `skylift lab up/status/down`: a running cloud of release R
    sample.py        a sample inventory of any release (rows per table), seed.py writes it

None of it ships in the product's wheel, and no product module imports it.
"""
