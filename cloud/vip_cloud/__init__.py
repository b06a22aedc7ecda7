"""A real all-in-one OpenStack on this machine, whose instances are lab hosts."""
