"""Multi-MN HA: the pieces a cloud of two or three management nodes runs on.

    skylift.ha.keepalived   the VIP held by keepalived among the MNs (the HA suite's template
                            filled in for one MN); its health check is
                            `python -m skylift.ha.check --url https://<MN address>:<port>`
    skylift.ha.galera       the cloud's database as a MariaDB Galera cluster across the MNs

The part sits between upgrade and mn (tests/test_boundaries.py FLOORS): it reads the MN's
rules (skylift.mn) and the release's suite (skylift.release.ha); the procedures above it
place and start what it renders.
"""
