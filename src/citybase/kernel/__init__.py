"""The kernel that lets many domains live together: the domain descriptor, the transactional outbox and
its relay, durable consumers idempotent on the event id, timers with one leader across processes, signed
webhooks. Imports core, storage and bus only."""
