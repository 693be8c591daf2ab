"""The cloud's certificate authority and the TLS that agents and the MN speak (see trust.py)."""
