"""Upgrading code while sagas are in flight (docs/upgrading.md): real worker processes of one
release leave sagas waiting for a payment; the next release's code is checked against their
histories, adopts them or not, and finishes them."""
