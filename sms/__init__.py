"""SMS surveys: sending, the reply conversation, keywords and delivery status."""
