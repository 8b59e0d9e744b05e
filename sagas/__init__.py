"""The sample shop's sagas: checkout (reserve, pay, ship) and refund, over the sample services."""
