"""Where credentials come from: one module per source kind, composed with a cache and a role layer.

A source's credentials are made by layers, each a small object with its
effects injected (`base.Effects`: store, STS clients, MFA drivers and window
ledger, clock, sleep, stop event, log), as aws-vault composes its providers:

    roles.Roles                 AssumeRole for each due role profile, with the session below
      cache.CachedSessions      memory, else the keyring, else the provider below
        keys.KeySessions        the source kind's provider: GetSessionToken with the long-term key and MFA

`skew.ClockSkews` keeps how far this machine's clock is from STS's, as the
replies tell. `credd.engine.Engine` builds these layers for each source of
the config and orchestrates them; `credd.refresh.Backoff` decides when a
failing source may call STS again.

To add a source kind (IAM Identity Center, a `credential_process` helper):
1. one module here with a provider following `base.SessionProvider`:
   `basis()` reads what a session is made from (failing with a RefreshError
   naming the fix), `session(basis)` makes a new one; the cache and role
   layers work with it unchanged;
2. its config schema: the source's fields in `credd.model.Source` and their
   validation in `credd.config`, with the kind they name;
3. `Engine._session_provider` picks the new provider by that kind (one line;
   today every source is a long-term key, so there is nothing to pick by yet).

Nothing in this package is imported by the `credd process` hook.
"""
