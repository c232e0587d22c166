"""Local faults for the tests: read-only directories, a full disk, a keyring that goes away."""
