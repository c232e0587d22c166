"""The suite-wide secret scan: every captured stream, log and failure report is checked for test secrets."""
