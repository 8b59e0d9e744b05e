"""Rewrapping data keys after a master-key rotation: every subject's data key (``subject_keys``)
not wrapped under the keyring's current master key is unwrapped with its old one and wrapped
again under the current one, so the old master key can leave the keyring (docs/data.md).

The data key itself and its id do not change, so no payload is touched. Bounded batches: a
page read without locks (keyset order by subject), then one short transaction that
compare-and-sets each row (unchanged since read), so an erasure, a new key or another process
rewrapping the same rows at the same time wins and is never undone. Resumable: a second run
(after a crash, or to finish what a missing key stopped) finds only what is left.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from orchestrator.codec import SubjectCodec
from orchestrator.errors import PayloadUndecodableError
from orchestrator.store.base import Store, WrappedSubjectKey

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 500  # data keys per read and per transaction
MAX_BATCH = 10_000
_SHOWN = 10  # subjects named in an error


@dataclass(slots=True)
class Rewrapped:
    """What a rewrap did: how many keys it rewrapped, and which it could not unwrap."""

    master_key_id: str
    rewrapped: int = 0
    unknown_master_keys: Counter[str] = field(default_factory=Counter)  # id -> keys under it
    corrupt_subjects: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise PayloadUndecodableError naming what is left, if anything could not be
        unwrapped (after everything else was rewrapped)."""
        problems = []
        if self.unknown_master_keys:
            ids = ", ".join(f"{k!r} ({n})" for k, n in sorted(self.unknown_master_keys.items()))
            problems.append(
                f"{self.unknown_master_keys.total()} are wrapped under master keys that are not"
                f" in the keyring: {ids}; add them to the keyring (old keys only decrypt) and"
                " run the rewrap again"
            )
        if self.corrupt_subjects:
            shown = ", ".join(self.corrupt_subjects[:_SHOWN])
            more = len(self.corrupt_subjects) - _SHOWN
            problems.append(
                f"{len(self.corrupt_subjects)} do not unwrap (tampered with or corrupt:"
                f" {shown}{f' and {more} more' if more > 0 else ''}); their payloads cannot be"
                " read anyway: erase those subjects (saga subjects erase)"
            )
        if problems:
            raise PayloadUndecodableError(
                f"{self.rewrapped} data keys were rewrapped under master key"
                f" {self.master_key_id!r}, but " + "; ".join(problems),
                reason="unknown key" if self.unknown_master_keys else "corrupt",
                rewrapped=self.rewrapped,
                unknown_master_keys=dict(self.unknown_master_keys),
                corrupt_subjects=self.corrupt_subjects[:_SHOWN],
            )


async def rewrap_data_keys(
    store: Store, subjects: SubjectCodec, batch_size: int = DEFAULT_BATCH
) -> Rewrapped:
    """Rewrap every data key not under ``subjects``' current master key (see the module
    docstring); rows it cannot unwrap are counted, skipped and left as they are."""
    outcome = Rewrapped(subjects.keyring.current)
    after = ""
    while True:
        page = await store.subject_keys_to_rewrap(outcome.master_key_id, after, batch_size)
        if not page:
            return outcome
        after = page[-1].subject
        rewraps: list[tuple[WrappedSubjectKey, str]] = []
        for stored in page:
            try:
                wrapped = subjects.rewrap(stored.subject, stored.key_id, stored.wrapped_key)
            except PayloadUndecodableError as exc:
                if exc.detail.get("reason") == "unknown key":
                    outcome.unknown_master_keys[stored.master_key_id] += 1
                else:
                    outcome.corrupt_subjects.append(stored.subject)
                continue
            if wrapped is not None:
                rewraps.append((stored, wrapped))
        changed = await store.rewrap_subject_keys(rewraps)
        outcome.rewrapped += changed
        logger.info(
            "rewrapped %d data keys under master key %r (%d so far)",
            changed,
            outcome.master_key_id,
            outcome.rewrapped,
        )
        if len(page) < batch_size:
            return outcome
