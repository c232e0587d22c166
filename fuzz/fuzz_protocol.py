"""libFuzzer on the request parser: a request that passes it keeps the protocol's rules; else a short error."""

from __future__ import annotations

import atheris
from common import run

# credd is instrumented for coverage, so it is imported here first (the checks in tests import it too).
with atheris.instrument_imports(include=["credd"]):
    from credd import protocol
    from tests.test_fuzz_protocol import INTERNALS, follows_the_rules


def test_one_input(data: bytes) -> None:
    try:
        request = protocol.decode_request(data)
    except protocol.ProtocolError as e:
        message = str(e)
        assert len(message) < 200 and not INTERNALS.search(message), message
        return
    assert follows_the_rules(request), repr(request)[:200]
    again = protocol.encode(request)  # what the daemon accepts, it can send on as it came (NaN in extras too)
    assert protocol.encode(protocol.decode_request(again)) == again


if __name__ == "__main__":
    run(test_one_input)
