"""`credd serve`: the composition root. Builds the real pieces, wires them, runs until a signal.

SIGTERM/SIGINT: stop taking requests, end every wait (an MFA window, a
scheduled job's) and abandon refreshes that have not reached STS, let a file
write in flight finish, remove the socket, exit 0. SIGHUP: reload the config; a bad
new config keeps the old one running and says why in the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from dataclasses import replace
from datetime import timedelta
from typing import IO

from credd import coredump, mfa, paths, protocol, sts
from credd.commands.args import NoArgs
from credd.context import Context
from credd.daemon import Daemon
from credd.endpoints.container import MAX_TTL, ContainerServer, Tokens
from credd.endpoints.http import HttpEndpoint, authority
from credd.endpoints.imds import ImdsServer
from credd.endpoints.unix_socket import Listener, SocketServer
from credd.engine import Engine
from credd.errors import CreddError
from credd.filesync import CredentialsWriter
from credd.model import Config
from credd.scheduler import Scheduler
from credd.store import Store
from credd.systemd import notify
from credd.timefmt import utc_text

log = logging.getLogger("credd.serve")


def run(ctx: Context, args: NoArgs) -> int:
    _log_to(ctx.stderr)
    _no_core_dumps()
    # A file size limit (`ulimit -f`) must fail a write with EFBIG, which credd reports and
    # survives, not kill the daemon with SIGXFSZ. CPython ignores it at start-up already;
    # credd relies on it, so it says so here.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    config = ctx.load_config()
    for warning in config.warnings:
        log.warning("%s", warning)  # it names the file and the line
    store = ctx.open_store(config)
    runtime = Runtime(ctx, config, store)
    return asyncio.run(runtime.serve())


class Runtime:
    """The running daemon: one config at a time, replaced whole on reload."""

    def __init__(self, ctx: Context, config: Config, store: Store) -> None:
        self.ctx = ctx
        self.store = store
        self.stopping = threading.Event()  # shared by every engine, the ones of later reloads too
        self.scheduler = Scheduler(self._due, self._caught_up)
        # One ledger of used MFA windows for the life of the process: a reload must not forget, in
        # memory, the windows an unwritable state dir kept it from saving (a code is never used twice).
        self.windows = mfa.UsedWindows(mfa.state_file(paths.state_dir(ctx.env)), uid=ctx.uid)
        self.daemon = self._build(config)
        self.tokens = Tokens()  # the container endpoint's: they outlive a reload, as the endpoint does
        self.container: ContainerServer | None = None
        self.imds: list[ImdsServer] = []  # one a profile; like the container endpoint, set at start, kept on reload

    def _build(self, config: Config) -> Daemon:
        # The daemon's hints name commands with the --config it was started with: one value, for every
        # piece that words a message (the daemon's own come from its engine).
        hint = self.ctx.hint_config
        inbox = mfa.CodeInbox(hint_config=hint)
        store = Store(self.store.backend, config.keyring_service, hint_config=hint)
        engine = Engine(config, store=store, clients=sts.StsClients(),
                        drivers=mfa.make_drivers(seeds=store.get_totp_seed, inbox=inbox, hint_config=hint),
                        windows=self.windows, stop=self.stopping, hint_config=hint)
        return Daemon(config, engine, inbox, plan=self.scheduler.plan,
                      write=CredentialsWriter(config.credentials_file, hint))

    async def serve(self) -> int:
        config = self.daemon.config
        # Refuses a second daemon before anything else starts.
        listener = Listener(config.socket, self.ctx.uid, self.ctx.hint_config)
        # Lambdas, not bound methods: a reload replaces self.daemon, and each request must reach the current one.
        server = SocketServer(listener, self._handle, self.ctx.uid,
                              quick=lambda request: self.daemon.quick_reply(request))  # noqa: PLW0108
        try:
            await self._start_http_endpoints(config)
        except BaseException:
            listener.close()
            await self._close_http_endpoints()
            raise
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, self.reload))
        await server.start()
        self.scheduler.start()
        log.info("credd serving %d profile(s) of %d source(s) on %s (config %s)", len(config.profiles),
                 len(config.sources), config.socket, config.path)
        for endpoint in self._http_endpoints():
            described = endpoint.describe()
            log.info("%s endpoint on %s%s", described["kind"], described["url"],
                     "" if described["kind"] == "container" else f" for profile {', '.join(described['profiles'])}")
        notify("READY=1")
        initial = loop.run_in_executor(None, self._start)
        await stop.wait()
        self.stopping.set()  # first: a refresh waiting for an MFA window gives up now, before it spends a code
        log.info("stopping: no new requests; abandoning refreshes that have not reached STS")
        notify("STOPPING=1")
        await server.close()
        await self._close_http_endpoints()
        self.scheduler.shutdown()
        await initial
        self.daemon.files.finish()  # a write in flight has finished
        log.info("stopped")
        return 0

    async def _start_http_endpoints(self, config: Config) -> None:
        """The container endpoint and the IMDS listeners the config turns on; a port that is taken is the user's to
        change, said with the config key."""
        if config.container is not None:
            host, port = config.container
            self.container = ContainerServer(host, port, lambda: self.daemon, self.tokens,
                                             clock=lambda: self.daemon.clock(), uid=self.ctx.uid)  # noqa: PLW0108
            await self._listen(self.container, "endpoints.container", host, port, config)
        for listener in config.imds:
            imds = ImdsServer(listener.host, listener.port, listener.profile, lambda: self.daemon,
                              clock=lambda: self.daemon.clock(), uid=self.ctx.uid)  # noqa: PLW0108
            self.imds.append(imds)
            await self._listen(imds, "endpoints.imds.listen", listener.host, listener.port, config)

    @staticmethod
    async def _listen(endpoint: HttpEndpoint, key: str, host: str, port: int, config: Config) -> None:
        try:
            await endpoint.start()
        except OSError as e:
            raise CreddError(f"{config.path}: {key}: cannot listen on {authority(host, port)} "
                             f"({e.strerror or e}); choose another port (0: any free one)") from None

    def _http_endpoints(self) -> list[HttpEndpoint]:
        return [*([self.container] if self.container is not None else []), *self.imds]

    async def _close_http_endpoints(self) -> None:
        for endpoint in self._http_endpoints():
            await endpoint.close()

    def endpoints(self) -> dict:
        """The HTTP endpoints as `status` shows them, each its `describe()`: the container endpoint (None: off) and
        the IMDS listeners."""
        return {"container": None if self.container is None else self.container.describe(),
                "imds": [imds.describe() for imds in self.imds]}

    def _handle(self, request: dict) -> dict:
        """A socket request: the container endpoint's tokens are the runtime's (they outlive a reload), the rest the
        daemon's; `status` gains the endpoint and its live tokens (ids only)."""
        op = request["op"]
        if op == "token-issue":
            return self._issue(request["profiles"], request["ttl"])
        if op == "token-revoke":
            if self.tokens.revoke(request["id"]):
                log.info("container endpoint: token %s revoked", request["id"])
                return {"ok": True, "message": f"token {request['id']} revoked"}
            return protocol.error_reply("unknown-token", f"no live token {request['id']!r} (expired, revoked, or "
                                        f"never issued); `{self.ctx.command('status')}` lists the live ones")
        reply = self.daemon.handle(request)
        if op == "status" and reply.get("ok"):
            reply["endpoints"] = self.endpoints()
        return reply

    def _issue(self, profiles: list[str], ttl: int) -> dict:
        daemon = self.daemon
        if self.container is None:
            return protocol.error_reply("failed", f"the container endpoint is off: add `endpoints: {{container: "
                                        f"127.0.0.1:0}}` to {daemon.config.path}, then restart the daemon "
                                        "(`systemctl --user restart credd`, or stop and start `credd serve`)")
        unknown = [name for name in profiles if name not in daemon.config.profiles]
        if unknown:
            return protocol.error_reply("unknown-profile", f"profile {unknown[0]!r} is not in {daemon.config.path}")
        seconds = min(ttl, int(MAX_TTL.total_seconds()))
        token = self.tokens.issue(profiles, timedelta(seconds=seconds), daemon.clock())
        log.info("container endpoint: token %s issued for %s, for %d s", token.id, ", ".join(profiles), seconds)
        return {"ok": True, "id": token.id, "token": token.value, "expires": utc_text(token.expires),
                "url": f"http://{self.container.address}/v1/credentials/"}

    def reload(self) -> None:
        notify("RELOADING=1")
        try:
            self._reload()
        except Exception as e:  # noqa: BLE001  in an executor nobody awaits: say it here, keep the running daemon
            log.error("reload failed (%s); the running config stays in effect", type(e).__name__)
            self._refused(f"the reload failed ({type(e).__name__}); this is a bug in credd")
        finally:
            notify("READY=1")

    def _reload(self) -> None:
        old = self.daemon
        path = self.ctx.config_path
        if not path.exists():
            init = self.ctx.command("init")
            log.error("reload: the config file %s is gone; credd keeps serving the config it runs (%d profile(s)). "
                      "Put the file back (`%s` writes a new one), then reload again", path,
                      len(old.config.profiles), init)
            self._refused(f"{path}: the file is gone; put it back (`{init}` writes a new one), then reload")
            return
        try:
            config = self.ctx.load_config()
        except CreddError as e:
            log.error("reload: the new config is invalid, keeping the running one: %s", e)
            self._refused(str(e))
            return
        if config.socket != old.config.socket:
            log.warning("reload: the socket path changed; it takes effect at the next restart")
        if (config.container, config.imds) != (old.config.container, old.config.imds):
            log.warning("reload: `endpoints:` changed; it takes effect at the next restart")
        for warning in config.warnings:
            log.warning("%s", warning)  # it names the file and the line
        new = self._build(config)
        # What is valid keeps being served, and no MFA code is spent, even with STS or the keyring out of reach.
        for name in new.engine.take_over(old.engine):
            new.status_of[name] = replace(old.status_of[name])
        new.files.take_over(old.files)
        for source in set(old.config.sources) - set(config.sources):
            self.scheduler.cancel(source)
        self.daemon = new
        log.info("reloaded %s: %d profile(s) of %d source(s)", config.path, len(config.profiles),
                 len(config.sources))
        new.refresh_all()

    def _refused(self, why: str) -> None:
        """Keep, for `status`, that the daemon still runs its older config, and why; until a good reload."""
        self.daemon.reload_error = (self.daemon.clock(), why)

    def _start(self) -> None:
        """Expired credentials left by an earlier run leave the file first, whether STS answers or not."""
        daemon = self.daemon
        try:
            removed = daemon.files.remove_expired(daemon.clock())
        except CreddError as e:
            log.error("cannot remove expired credentials from %s: %s", daemon.config.credentials_file, e)
        else:
            if removed:
                log.info("removed the expired credentials of profile(s) %s from %s", ", ".join(removed),
                         daemon.config.credentials_file)
        daemon.refresh_all()

    def _due(self, source: str) -> None:
        if source in self.daemon.config.sources:
            self.daemon.refresh_all([source])

    def _caught_up(self) -> None:
        self.daemon.refresh_all()


def _log_to(stream: IO[str]) -> None:
    """One line an event on stderr; the journal (or launchd's log file) adds the time when it runs us."""
    level = os.environ.get("CREDD_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
    # botocore's own DEBUG lines carry headers and whole replies; StsClients pins it, and so does this.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _no_core_dumps() -> None:
    """A core dump of the daemon would hold every key it has in memory: the hard limit goes to 0 too."""
    coredump.no_core_files(hard=True)
    problem = coredump.undumpable()
    if problem is not None:
        log.warning("could not mark the process undumpable (prctl: %s)", problem)
