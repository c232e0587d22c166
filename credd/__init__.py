"""credd: AWS credentials with MFA, kept fresh by a per-user daemon.

Only the version lives here: the credential_process hook imports this package
on every AWS CLI call, so nothing heavy may be imported at this level.
"""

__version__ = "0.1.0"
