"""Fixtures for the STS engine: a local STS (moto on loopback) and the strict STS front."""
