"""Outgoing webhooks: events written to an outbox in the transaction that caused them,
delivered signed to the subscribed URLs, retried, logged, re-deliverable.

See docs/webhooks.md for what receivers get and how they verify it.
"""
