"""Alert fan-out: conflict events from the outbox to tenants' webhooks, with retries."""
