"""The VIP lab: the stack's own user data, booted in network namespaces."""
