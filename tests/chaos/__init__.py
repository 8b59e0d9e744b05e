"""The chaos harness (issue #15): a fleet of `saga worker` processes running checkout sagas on a
queue while workers are SIGKILLed, paused past their lease (SIGSTOP), stopped (SIGTERM), cut
from the database (pg_terminate_backend) and the database restarted; then a checker proves
that every saga ended and that the history and the effects' ledger agree in both directions.

    python -m tests.chaos --seed 7                    # the long run (make chaos)
    python -m tests.chaos --sagas 60 --seconds 40     # a short one (tests/chaos/test_chaos.py)

- app.py       the sagas the workers run, every effect recorded in the ledger
- cluster.py   a private PostgreSQL cluster the harness may restart
- harness.py   the run: workers, the client (starts, messages, duplicate messages, cancels),
               the fault schedule (from the seed), the wait for every saga to end
- check.py     the checker: statuses, ledger <-> history, order, pivot, nothing after the end
"""
