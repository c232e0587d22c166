"""A section of the credentials file that shadows a profile credd should write: what to tell the user.

Such a section holds a long-term key (`aws_access_key_id` with no session
token) that credd does not own, so credd refuses to overwrite it and
`aws --profile NAME` silently uses that key instead of credd's credentials.
The fix depends on whose key it is: `credd keys import` is right only when
it is the source's own key (the one the keyring holds); for any other key
it would make another identity the source's. Pure: the daemon and `doctor`
pass in what they know.
"""

from __future__ import annotations

from credd.commandline import credd_command
from credd.model import mask_key_id


def advice(profile: str, source: str, where: str, key_id: str, keyring_key_id: str | None,
           config: str, hint: str | None = None) -> tuple[str, str]:
    """(what is wrong, the fix) for the section at `where` (FILE:LINE) that keeps credd from writing `profile`.

    `hint`: the `--config` the user runs with, for the command the fix names.
    """
    held = mask_key_id(key_id)
    problem = (f"[{profile}] at {where} holds a long-term access key ({held}) that credd does not overwrite, so "
               f"`aws --profile {profile}` uses that key, not credd's credentials")
    if keyring_key_id == key_id:
        import_it = credd_command(hint, "keys", "import", source, "--from-profile", profile)
        return (f"{problem}. It is source {source}'s own key, which the keyring holds too",
                f"remove it from the file with `{import_it}`")
    theirs = (f"source {source}'s key in the keyring is {mask_key_id(keyring_key_id)}" if keyring_key_id
              else f"the keyring holds no key of source {source} to compare it with")
    return (f"{problem}. It is not known to be source {source}'s key ({theirs})",
            f"move or rename section [{profile}], or remove its key by hand, at {where}; or set `write: false` for "
            f"profile {profile} in {config}")


def message(problem_and_fix: tuple[str, str]) -> str:
    """The two as one line, for `status` and the log."""
    problem, fix = problem_and_fix
    return f"{problem}: {fix}"
