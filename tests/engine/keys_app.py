"""An application for `saga subjects rewrap --app tests.engine.keys_app:app` (test_rewrap.py):
its keyring has rotated from master key m1 to m2 and keeps m1 to decrypt."""

from __future__ import annotations

import os

from orchestrator import Keyring, Orchestrator, SubjectCodec
from tests.engine.test_codec import KEY_1, KEY_2

app = Orchestrator(
    "keys",
    os.environ.get("KEYS_APP_URL"),
    codec=SubjectCodec(Keyring({"m1": KEY_1, "m2": KEY_2}, "m2")),
)
