"""Lists, subscriptions, tokens, import/export, bounces and suppression."""
