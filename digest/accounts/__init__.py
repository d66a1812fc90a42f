"""People who run the service: users and their roles, sign-in sessions, API tokens, and the
audit log of what they did."""
