"""Lists, subscriptions, sign-up, import/export, bounces and suppression."""
