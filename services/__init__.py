"""Sample microservices the sample sagas call over HTTP (independent of `orchestrator`)."""
